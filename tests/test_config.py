"""Configuration: YAML specs, ${VAR} interpolation, env quick start, errors by field path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.config import load_config, load_yaml, parse_config
from app.errors import ConfigError
from app.settings import load_settings


def _errors(document: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(document)
    return dict(info.value.errors)


def _pg(**overrides: Any) -> dict[str, Any]:
    check: dict[str, Any] = {
        "name": "db",
        "type": "postgres",
        "params": {"dsn": "postgresql://u@127.0.0.1:5432/app"},
    }
    check.update(overrides)
    return check


def test_it_builds_checks_with_type_defaults() -> None:
    """A minimal spec gets the type's criticality, interval and a timeout below the interval."""
    config = parse_config({"checks": [_pg(interval="10s")]})
    (check,) = config.checks
    assert check.criticality == "critical"
    assert check.interval == 10.0
    assert 0 < check.timeout < check.interval
    assert (check.fall, check.rise) == (3, 2)


def test_it_rejects_an_unknown_key_by_field_path() -> None:
    """Unknown keys at the top, in a check and in params are each named."""
    errors = _errors(
        {"checks": [_pg(colour="red", params={"dsn": "postgresql://x/y", "tls": True})]}
    )
    assert errors["checks.0.colour"] == "unknown key"
    assert errors["checks.0.params.tls"] == "unknown key"
    assert _errors({"checks": [], "alerts": []})["alerts"] == "unknown key"


def test_it_rejects_an_unknown_type_and_lists_the_known_ones() -> None:
    """The message names the bad type and the types that exist."""
    message = _errors({"checks": [_pg(type="postgress")]})["checks.0.type"]
    assert "'postgress'" in message
    assert "postgres" in message.split("known:")[1]


def test_it_rejects_a_bad_duration() -> None:
    """A duration that is not a duration says how to write one."""
    message = _errors({"checks": [_pg(interval="soon")]})["checks.0.interval"]
    assert "30s" in message


def test_it_rejects_a_timeout_not_shorter_than_the_interval() -> None:
    """timeout >= interval would let runs overlap."""
    message = _errors({"checks": [_pg(interval="10s", timeout="10s")]})["checks.0.timeout"]
    assert "shorter than the interval" in message


def test_it_rejects_a_missing_param() -> None:
    """A postgres check without a dsn names checks.N.params.dsn."""
    assert _errors({"checks": [_pg(params={})]})["checks.0.params.dsn"] == "required but missing"


def test_it_rejects_a_duplicate_name() -> None:
    """Names identify checks in URLs and metrics, so they must be unique."""
    errors = _errors({"checks": [_pg(), _pg()]})
    assert "duplicate" in errors["checks.1.name"]


def test_it_rejects_reserved_and_malformed_names() -> None:
    """'live' would shadow /health/live; spaces do not fit URLs or labels."""
    errors = _errors({"checks": [_pg(name="live"), _pg(name="my db")]})
    assert "reserved" in errors["checks.0.name"]
    assert "checks.1.name" in errors


def test_it_lists_every_error_at_once() -> None:
    """One run of validation reports all problems, not the first one."""
    errors = _errors(
        {
            "checks": [
                _pg(interval="nope"),
                _pg(name="b", type="nosuch"),
                _pg(name="c", params={}),
                _pg(name="d", fall=0),
            ]
        }
    )
    assert {"checks.0.interval", "checks.1.type", "checks.2.params.dsn", "checks.3.fall"} <= set(
        errors
    )


def test_it_interpolates_environment_variables(tmp_path: Path) -> None:
    """${VAR}, ${VAR:-default} and VAR_FILE fill values; a missing VAR is named by path."""
    secret_file = tmp_path / "dsn"
    secret_file.write_text("postgresql://u:pw@db:5432/app\n")
    path = tmp_path / "drwatch.yaml"
    path.write_text(
        "checks:\n"
        "  - name: a\n    type: postgres\n    interval: ${INTERVAL:-20s}\n"
        "    params: {dsn: '${DSN_A}'}\n"
        "  - name: b\n    type: postgres\n    params: {dsn: '${DSN_B}'}\n"
    )
    config = load_yaml(path, {"DSN_A": "postgresql://x@h/db", "DSN_B_FILE": str(secret_file)})
    assert config.checks[0].interval == 20.0
    assert config.checks[1].params.dsn.get_secret_value() == "postgresql://u:pw@db:5432/app"  # type: ignore[attr-defined]

    with pytest.raises(ConfigError) as info:
        load_yaml(path, {"DSN_A": "postgresql://x@h/db"})
    assert ("checks.1.params.dsn", "environment variable DSN_B is not set") in info.value.errors


def test_it_reports_invalid_yaml_with_its_position(tmp_path: Path) -> None:
    """A syntax error names the line."""
    path = tmp_path / "bad.yaml"
    path.write_text("checks:\n  - name: a\n   type: [\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(path, {})
    assert info.value.errors[0][0].startswith("line ")


def test_it_builds_checks_from_the_applications_variables() -> None:
    """DATABASE_URL and REDIS_URL alone give critical postgres and redis checks."""
    settings = load_settings({})
    config = load_config(
        settings,
        {"DATABASE_URL": "postgresql://app@db:5432/app", "REDIS_URL": "redis://cache:6379/0"},
    )
    assert {(c.name, c.type, c.criticality) for c in config.checks} >= {
        ("database", "postgres", "critical"),
        ("redis", "redis", "critical"),
    }


def test_it_falls_back_to_the_shipped_example() -> None:
    """With nothing configured, drwatch runs the example config against local services."""
    config = load_config(load_settings({}), {})
    assert [c.type for c in config.checks] == ["postgres", "redis"]


def test_it_reads_settings_from_file_variables(tmp_path: Path) -> None:
    """DRWATCH_DETAILS_TOKEN_FILE provides the details token from a mounted secret."""
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    settings = load_settings({"DRWATCH_DETAILS_TOKEN_FILE": str(token), "DRWATCH_PORT": "9000"})
    assert settings.details_token is not None
    assert settings.details_token.get_secret_value() == "s3cr3t-token"
    assert settings.port == 9000


def test_it_rejects_invalid_settings_by_variable_name() -> None:
    """A bad DRWATCH_PORT is named as the variable people set."""
    with pytest.raises(ConfigError) as info:
        load_settings({"DRWATCH_PORT": "http", "DRWATCH_HEALTH_DETAILS": "sometimes"})
    paths = {path for path, _ in info.value.errors}
    assert paths == {"DRWATCH_PORT", "DRWATCH_HEALTH_DETAILS"}


def test_config_validate_exits_2_and_lists_every_error(tmp_path: Path) -> None:
    """`drwatch config validate` prints each error with its field path and exits with 2."""
    path = tmp_path / "drwatch.yaml"
    path.write_text(
        "checks:\n"
        "  - {name: a, type: postgres, interval: 5s, timeout: 9s, params: {dsn: 'postgresql://h/d'}}\n"
        "  - {name: a, type: postgres, params: {dsn: 'postgresql://h/d'}}\n"
        "  - {name: c, type: redis, params: {}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "config", "validate"],
        # PYTHONPATH: the app of this checkout, not the one the virtualenv was installed from.
        env={
            "DRWATCH_CONFIG": str(path),
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(Path(__file__).parents[1]),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "checks.0.timeout" in result.stderr
    assert "checks.1.name" in result.stderr
    assert "checks.2.params.url" in result.stderr


def _drill_document(production: dict[str, Any]) -> dict[str, Any]:
    return {
        "checks": [
            production,
            {"name": "dumps", "type": "backup_files", "params": {"path": "/backups"}},
        ],
        "drills": [
            {
                "name": "monthly",
                "source": "dumps",
                "target_dsn": "postgresql://admin@db.internal:5432/app",
            }
        ],
    }


def test_it_refuses_a_drill_that_targets_a_monitored_database() -> None:
    """A drill creates and drops databases, so the database of a postgres check is refused."""
    errors = _errors(_drill_document(_pg(params={"dsn": "postgresql://u@db.internal:5432/app"})))
    assert "drills.0.target_dsn" in errors


def test_it_refuses_a_drill_that_targets_the_primary_whose_wal_is_archived() -> None:
    """The primary a wal_archive check watches is production too, not a scratch server."""
    archive = {
        "name": "pitr",
        "type": "wal_archive",
        "params": {"dsn": "postgresql://u@db.internal:5432/app"},
    }
    assert "drills.0.target_dsn" in _errors(_drill_document(archive))


def test_a_drill_source_must_be_a_type_a_drill_can_restore() -> None:
    """The message names the restorable types, read from the check classes."""
    document = _drill_document(_pg())
    document["drills"][0]["source"] = "db"
    document["drills"][0]["target_dsn"] = "postgresql://admin@scratch:5432/postgres"
    message = _errors(document)["drills.0.source"]
    assert message == (
        "'db' is a postgres check; a drill restores the newest backup of a backup_files, rds "
        "or s3 check"
    )


def test_the_quick_start_gives_backup_files_a_daily_rpo(tmp_path: Path) -> None:
    """BACKUP_DIR alone builds a degraded backup_files check held to 24h."""
    config = load_config(load_settings({}), {"BACKUP_DIR": str(tmp_path)})
    (check,) = config.checks
    assert (check.name, check.type, check.criticality) == ("backups", "backup_files", "degraded")
    assert check.params.rpo == 86400.0  # type: ignore[attr-defined]


def test_the_quick_start_needs_every_variable_of_a_check(tmp_path: Path) -> None:
    """TWILIO_ACCOUNT_SID without its auth token builds no twilio check; _FILE variables count."""
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    sid = "AC" + "0" * 32
    assert load_config(load_settings({}), {"TWILIO_ACCOUNT_SID": sid}).source == str(
        Path(__file__).parents[1] / "app" / "example-config.yaml"
    )
    config = load_config(
        load_settings({}), {"TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN_FILE": str(token)}
    )
    assert [(c.name, c.type) for c in config.checks] == [("twilio", "twilio")]


def test_an_unknown_key_does_not_hide_the_other_errors_of_its_check() -> None:
    """`colour: red` and a timeout longer than the interval are both reported."""
    errors = _errors({"checks": [_pg(), _pg(name="b", timeout="9s", interval="2s", colour="red")]})
    assert errors["checks.1.colour"] == "unknown key"
    assert "must be shorter than the interval" in errors["checks.1.timeout"]


def test_an_unknown_top_level_key_does_not_hide_the_errors_below_it() -> None:
    """The errors of every check and drill are reported next to the unknown top-level key."""
    errors = _errors(
        {
            "chekcs": [],
            "checks": [_pg(interval="nope"), _pg(name="b", type="nosuch")],
            "drills": [
                {"name": "monthly", "source": "nowhere", "target_dsn": "postgresql://a@b/c"}
            ],
        }
    )
    assert errors["chekcs"] == "unknown key"
    assert {"checks.0.interval", "checks.1.type", "drills.0.source"} <= set(errors)


def test_a_drill_error_names_the_entry_it_is_about() -> None:
    """drills.0 has a bad schedule, drills.1 targets production: the path says drills.1."""
    document = _drill_document(_pg(params={"dsn": "postgresql://u@db.internal:5432/app"}))
    document["drills"][0]["target_dsn"] = "postgresql://admin@scratch:5432/postgres"
    document["drills"][0]["schedule"] = "every full moon"
    document["drills"].append(
        {"name": "weekly", "source": "dumps", "target_dsn": "postgresql://a@db.internal:5432/app"}
    )
    errors = _errors(document)
    assert "drills.0.schedule" in errors
    assert "drills.1.target_dsn" in errors
    assert "drills.0.target_dsn" not in errors


def test_an_invalid_drill_targeting_production_is_still_refused() -> None:
    """A drill with another error is checked against the production databases too."""
    document = _drill_document(_pg(params={"dsn": "postgresql://u@db.internal:5432/app"}))
    document["drills"][0]["schedule"] = "every full moon"
    errors = _errors(document)
    assert {"drills.0.schedule", "drills.0.target_dsn"} <= set(errors)
