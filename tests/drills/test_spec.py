"""The configuration of a drill: DrillSpec and its integrity checks are validated at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.drills.spec import DrillSpec, Expectation, IntegrityCheck


def test_an_integrity_check_needs_exactly_one_expectation() -> None:
    """Zero or two expectations, or an unreadable one, are config errors."""
    with pytest.raises(ValidationError, match="exactly one"):
        IntegrityCheck(name="none", sql="SELECT 1")
    with pytest.raises(ValidationError, match="exactly one"):
        IntegrityCheck(name="two", sql="SELECT 1", expect=">= 1", within_rpo_of_backup=True)
    with pytest.raises(ValidationError, match="not an expectation"):
        IntegrityCheck(name="bad", sql="SELECT 1", expect="at least 1")
    with pytest.raises(ValidationError, match="lower bound"):
        IntegrityCheck(name="bad", sql="SELECT 1", expect="between 5 and 1")
    assert IntegrityCheck(name="ok", sql="SELECT 1", expect="between 1 and 5").expect


def test_a_drill_spec_rejects_bad_schedules_names_and_unknown_keys() -> None:
    """Cron, name, compare_to_source without source_dsn and unknown keys are validated."""
    base = {"name": "d", "source": "s", "target_dsn": "postgresql://u@h/db"}
    with pytest.raises(ValidationError, match="cron"):
        DrillSpec.model_validate({**base, "schedule": "every month"})
    with pytest.raises(ValidationError, match="not a valid name"):
        DrillSpec.model_validate({**base, "name": "bad name!"})
    with pytest.raises(ValidationError, match="source_dsn"):
        DrillSpec.model_validate(
            {
                **base,
                "integrity": [
                    {"name": "c", "sql": "SELECT 1", "compare_to_source": {"tolerance": 0.1}}
                ],
            }
        )
    with pytest.raises(ValidationError, match="Extra inputs"):
        DrillSpec.model_validate({**base, "jobz": 4})
    spec = DrillSpec.model_validate(base)
    assert (spec.schedule, spec.rto, spec.jobs, spec.timeout) == ("0 3 1 * *", 14400.0, 2, 21600.0)


@pytest.mark.parametrize("port", ["99999", "abc"])
def test_a_drill_spec_rejects_a_dsn_whose_port_is_not_a_number(port: str) -> None:
    """A port libpq cannot use is a config error, not a silent fall-back to 5432."""
    with pytest.raises(ValidationError) as caught:
        DrillSpec.model_validate(
            {"name": "d", "source": "s", "target_dsn": f"postgresql://u:pw-4417@h:{port}/db"}
        )
    [error] = caught.value.errors()
    assert error["loc"] == ("target_dsn",)
    assert "check the port" in error["msg"]
    assert "pw-4417" not in error["msg"]


def test_an_expectation_holds_for_the_values_it_describes() -> None:
    """Comparisons and ranges are judged as written; '=' means '=='."""
    assert Expectation.parse("= 42").holds(42)
    assert Expectation.parse(">= 1").holds(1) and not Expectation.parse("> 1").holds(1)
    assert Expectation.parse("between 10 and 20").holds(20)
    assert not Expectation.parse("between 10 and 20").holds(20.5)
    assert Expectation.parse("!= 0").holds(-1)
