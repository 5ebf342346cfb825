"""Maintenance windows on their own: occurrences across daylight saving changes, spans for the
SLO, config errors by field path, and the monitor's verdict inside and after a window."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.checks.base import Result, Status
from app.config import parse_config
from app.errors import ConfigError
from app.history.maintenance import MaintenanceSchedule
from app.history.windows import Window, span_seconds
from app.monitor import Monitor
from app.store.repository import Transition

CHECKS = [
    {
        "name": name,
        "type": "postgres",
        "criticality": criticality,
        "interval": "10s",
        "fall": 1,
        "rise": 3,
        "params": {"dsn": "postgresql://h/d"},
    }
    for name, criticality in (
        ("db", "critical"),
        ("db-replica", "critical"),
        ("openai", "degraded"),
    )
]


def _config(*windows: dict[str, Any]) -> Any:
    return parse_config({"checks": CHECKS, "maintenance": list(windows)})


def _window(**fields: Any) -> Window:
    return _config({"name": "w", "reason": "planned work", **fields}).maintenance[0]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _errors(*windows: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        _config(*windows)
    return dict(caught.value.errors)


def test_a_weekly_rome_window_opens_an_hour_earlier_in_utc_after_clocks_go_forward() -> None:
    """Sunday 03:00 Europe/Rome is 02:00 UTC before 29 March 2026 and 01:00 UTC after it."""
    window = _window(cron="0 3 * * 0", duration="2h", timezone="Europe/Rome")
    spans = list(window.occurrences(_utc("2026-03-20T00:00"), _utc("2026-04-06T00:00")))
    assert spans == [
        (_utc("2026-03-22T02:00"), _utc("2026-03-22T04:00")),
        (_utc("2026-03-29T01:00"), _utc("2026-03-29T03:00")),
        (_utc("2026-04-05T01:00"), _utc("2026-04-05T03:00")),
    ]
    assert window.open_at(_utc("2026-03-29T01:30")) is not None
    assert window.open_at(_utc("2026-03-29T03:00")) is None
    assert window.next_boundary(_utc("2026-03-28T12:00")) == _utc("2026-03-29T01:00")


def test_a_daily_window_opens_once_on_the_night_clocks_go_back() -> None:
    """02:00 Europe/Rome happens twice on 25 October 2026; the window opens at the first."""
    window = _window(cron="0 2 * * *", duration="1h", timezone="Europe/Rome")
    spans = list(window.occurrences(_utc("2026-10-24T12:00"), _utc("2026-10-26T12:00")))
    assert spans == [
        (_utc("2026-10-25T00:00"), _utc("2026-10-25T01:00")),
        (_utc("2026-10-26T01:00"), _utc("2026-10-26T02:00")),
    ]


def test_day_of_week_zero_and_seven_are_sunday_as_in_crontab() -> None:
    """`0 3 * * 0`, `0 3 * * 7` and `0 3 * * sun` open on Sundays, `1-5` on weekdays."""
    start, end = _utc("2026-11-01T00:00"), _utc("2026-11-08T00:00")  # Sunday to Sunday
    for field in ("0", "7", "sun"):
        window = _window(cron=f"0 3 * * {field}", duration="1h")
        assert [s.weekday() for s, _ in window.occurrences(start, end)] == [6]
    weekdays = _window(cron="0 3 * * 1-5", duration="1h")
    assert [s.weekday() for s, _ in weekdays.occurrences(start, end)] == [0, 1, 2, 3, 4]


def test_a_synthetic_day_with_a_one_hour_window_has_3600_seconds_of_maintenance() -> None:
    """spans() over one day with a 1 h window on the database: 3,600 s, for it and the service."""
    config = _config(
        {
            "name": "patch",
            "checks": ["db"],
            "start": "2026-05-04T10:00:00Z",
            "end": "2026-05-04T11:00:00Z",
            "reason": "minor version upgrade",
        }
    )
    schedule = MaintenanceSchedule(
        config.maintenance, [(c.name, c.criticality) for c in config.checks]
    )
    day = (_utc("2026-05-04T00:00"), _utc("2026-05-05T00:00"))
    assert span_seconds(schedule.spans("db", *day)) == 3600
    assert span_seconds(schedule.spans(None, *day)) == 3600
    assert schedule.spans("openai", *day) == []
    # Clipped to the period asked for.
    assert span_seconds(schedule.spans("db", _utc("2026-05-04T10:30"), day[1])) == 1800


def test_overlapping_windows_count_once_and_a_vendor_window_is_not_service_maintenance() -> None:
    """Two overlapping windows on the database merge; a window on a degraded vendor only is not
    maintenance of the service."""
    config = _config(
        {
            "name": "a",
            "checks": ["db*"],
            "start": "2026-05-04T10:00:00Z",
            "end": "2026-05-04T11:00:00Z",
            "reason": "r",
        },
        {
            "name": "b",
            "checks": ["db"],
            "start": "2026-05-04T10:30:00Z",
            "end": "2026-05-04T12:00:00Z",
            "reason": "r",
        },
        {
            "name": "c",
            "checks": ["openai"],
            "start": "2026-05-04T13:00:00Z",
            "end": "2026-05-04T14:00:00Z",
            "reason": "r",
        },
    )
    schedule = MaintenanceSchedule(
        config.maintenance, [(c.name, c.criticality) for c in config.checks]
    )
    day = (_utc("2026-05-04T00:00"), _utc("2026-05-05T00:00"))
    assert schedule.spans(None, *day) == [(_utc("2026-05-04T10:00"), _utc("2026-05-04T12:00"))]
    assert span_seconds(schedule.spans("db-replica", *day)) == 3600
    assert span_seconds(schedule.spans("openai", *day)) == 3600


@pytest.mark.parametrize(
    ("window", "path", "message"),
    [
        (
            {"start": "2026-05-04T11:00:00Z", "end": "2026-05-04T10:00:00Z"},
            "maintenance.0.end",
            "must be after start",
        ),
        ({"start": "2026-05-04T10:00:00Z"}, "maintenance.0.end", "required"),
        (
            {"start": "2026-05-04T10:00:00", "end": "2026-05-04T11:00:00Z"},
            "maintenance.0.start",
            "timezone",
        ),
        (
            {"cron": "0 3 * * 0", "duration": "1h", "checks": ["db", "cache*"]},
            "maintenance.0.checks.1",
            "'cache*' matches no configured check",
        ),
        (
            {"cron": "0 25 * * *", "duration": "1h"},
            "maintenance.0.cron",
            "not a valid crontab expression",
        ),
        ({"cron": "0 3 * * 8", "duration": "1h"}, "maintenance.0.cron", "not a day of the week"),
        ({"cron": "0 0 30 2 *", "duration": "1h"}, "maintenance.0.cron", "never occurs"),
        (
            {"cron": "0 3 * * 0", "duration": "1h", "timezone": "Europe/Atlantis"},
            "maintenance.0.timezone",
            "unknown time zone 'Europe/Atlantis'",
        ),
        ({"cron": "0 3 * * 0"}, "maintenance.0.duration", "required"),
        ({"cron": "0 3 * * 0", "duration": "0s"}, "maintenance.0.duration", "greater than zero"),
        ({"cron": "0 * * * *", "duration": "90m"}, "maintenance.0.duration", "overlap itself"),
        # 23 h is shorter than a day, but not than the day clocks go forward.
        (
            {"cron": "30 1 * * *", "duration": "23h30m", "timezone": "Europe/Rome"},
            "maintenance.0.duration",
            "overlap itself",
        ),
        (
            {"cron": "0 3 * * 0", "duration": "1h", "start": "2026-05-04T10:00:00Z"},
            "maintenance.0.cron",
            "either one-off",
        ),
        ({}, "maintenance.0", "needs start and end"),
        (
            {"cron": "0 3 * * 0", "duration": "1h", "fail_over": True},
            "maintenance.0.fail_over",
            "unknown key",
        ),
    ],
)
def test_a_bad_window_is_reported_by_its_field_path(
    window: dict[str, Any], path: str, message: str
) -> None:
    """Each mistake in a window names the field it is in."""
    errors = _errors({"name": "w", "reason": "planned work", **window})
    assert path in errors, errors
    assert message in errors[path]


def test_two_definitions_of_one_name_and_a_missing_reason_are_reported_together() -> None:
    """A name defined twice names the second one; every window's errors come at once."""
    errors = _errors(
        {"name": "patch", "cron": "0 3 * * 0", "duration": "1h", "reason": "r"},
        {
            "name": "patch",
            "start": "2026-05-04T10:00:00Z",
            "end": "2026-05-04T11:00:00Z",
            "reason": "r",
        },
        {"name": "other", "cron": "0 3 * * 0", "duration": "1h"},
    )
    assert "duplicate maintenance window name 'patch'" in errors["maintenance.1.name"]
    assert errors["maintenance.2.reason"] == "required but missing"


def _result(status: Status) -> Result:
    return Result(status, f"database {status.value}")


def _monitor_with(window: dict[str, Any]) -> tuple[Monitor, list[Transition]]:
    config = _config({"name": "patch", "reason": "planned restart", **window})
    schedule = MaintenanceSchedule(
        config.maintenance, [(c.name, c.criticality) for c in config.checks]
    )
    transitions: list[Transition] = []
    monitor = Monitor(config.checks, on_transition=transitions.append, maintenance=schedule)
    for name in ("db", "db-replica", "openai"):
        monitor.record(name, _result(Status.PASS))
    return monitor, transitions


def _until(seconds: float) -> tuple[str, datetime]:
    end = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0) + timedelta(
        seconds=1
    )
    return end.isoformat(), end


def test_a_failing_check_in_a_window_reads_warn_and_fails_the_moment_the_window_ends() -> None:
    """Inside the window: warn, named, verdict warn, the fail still recorded; after: fail."""
    end_text, end = _until(0.5)
    monitor, transitions = _monitor_with(
        {"checks": ["db"], "start": "2026-01-01T00:00:00Z", "end": end_text}
    )
    monitor.record("db", _result(Status.FAIL))
    state = monitor.snapshot.checks["db"]
    assert state.effective is Status.WARN
    assert state.output == f"in maintenance window patch until {end:%H:%M}: database fail"
    assert state.as_dict()["maintenance"]["name"] == "patch"
    assert monitor.snapshot.status is Status.WARN
    assert [(t.check_name, t.to_status) for t in transitions][-1] == ("db", "fail")
    while datetime.now(UTC) < end:
        time.sleep(0.05)
    # No result has arrived since: reading the snapshot applies the window's end.
    assert monitor.snapshot.status is Status.FAIL
    assert monitor.snapshot.checks["db"].output == "database fail"
    assert monitor.snapshot.checks["db"].as_dict()["maintenance"] is None


def test_a_check_that_recovered_in_the_window_passes_at_its_end_without_a_rise_wait() -> None:
    """Passing runs inside the window count toward rise, so the real state shows at once."""
    end_text, end = _until(0.5)
    monitor, _ = _monitor_with({"start": "2026-01-01T00:00:00Z", "end": end_text})
    monitor.record("db", _result(Status.FAIL))
    for _ in range(3):
        monitor.record("db", _result(Status.PASS))
    assert monitor.snapshot.checks["db"].effective is Status.PASS
    while datetime.now(UTC) < end:
        time.sleep(0.05)
    assert monitor.snapshot.checks["db"].effective is Status.PASS
    assert monitor.snapshot.status is Status.PASS


def test_a_failover_window_keeps_the_failure_so_health_answers_503() -> None:
    """failover: true: the check stays fail (named), so /health would fail the region over."""
    monitor, _ = _monitor_with(
        {"start": "2026-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z", "failover": True}
    )
    monitor.record("db", _result(Status.FAIL))
    state = monitor.snapshot.checks["db"]
    assert state.effective is Status.FAIL
    assert state.output.startswith("in maintenance window patch until 00:00: ")
    assert monitor.snapshot.status is Status.FAIL


def test_a_window_on_other_checks_leaves_a_failing_check_failing() -> None:
    """Only the covered checks are in maintenance."""
    monitor, _ = _monitor_with(
        {"checks": ["openai"], "start": "2026-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}
    )
    monitor.record("db", _result(Status.FAIL))
    assert monitor.snapshot.checks["db"].effective is Status.FAIL
    assert monitor.snapshot.checks["db"].maintenance is None
    assert monitor.snapshot.checks["openai"].maintenance is not None
    assert monitor.snapshot.status is Status.FAIL


def test_a_window_that_opens_later_applies_when_it_opens() -> None:
    """A failing check turns warn when a window opens, without a new result."""
    start = datetime.now(UTC) + timedelta(seconds=0.5)
    monitor, _ = _monitor_with(
        {"checks": ["db"], "start": start.isoformat(), "end": "2099-01-01T00:00:00Z"}
    )
    monitor.record("db", _result(Status.FAIL))
    assert monitor.snapshot.status is Status.FAIL
    while datetime.now(UTC) < start:
        time.sleep(0.05)
    assert monitor.snapshot.status is Status.WARN
