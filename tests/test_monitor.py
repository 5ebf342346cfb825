"""The monitor: rise/fall damping, staleness, criticality and the verdict, snapshots."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from app.checks.base import Result, Status
from app.config import CheckConfig, parse_config
from app.monitor import Monitor
from app.store.repository import RecoveryPoint, Transition, VerdictTransition


def _configs(*specs: tuple[str, str]) -> list[CheckConfig]:
    """(name, criticality) pairs as postgres checks with fall 3, rise 2, interval 10 s."""
    return list(
        parse_config(
            {
                "checks": [
                    {
                        "name": name,
                        "type": "postgres",
                        "criticality": criticality,
                        "interval": "10s",
                        "params": {"dsn": "postgresql://h/d"},
                    }
                    for name, criticality in specs
                ]
            }
        ).checks
    )


def _result(status: Status, at: float | None = None) -> Result:
    time_ = datetime.fromtimestamp(at, UTC) if at else datetime.now(UTC)
    return Result(status, f"{status.value} output", time=time_)


def test_it_fails_only_after_fall_consecutive_failures() -> None:
    """With fall=3, two failures keep pass; the third turns the check to fail."""
    monitor = Monitor(_configs(("db", "critical")))
    monitor.record("db", _result(Status.PASS))
    monitor.record("db", _result(Status.FAIL))
    monitor.record("db", _result(Status.FAIL))
    assert monitor.state("db").effective is Status.PASS
    monitor.record("db", _result(Status.FAIL))
    assert monitor.state("db").effective is Status.FAIL


def test_an_interrupted_run_of_failures_starts_counting_again() -> None:
    """fail, fail, pass, fail, fail never reaches fall=3 consecutive failures."""
    monitor = Monitor(_configs(("db", "critical")))
    for status in ("pass", "fail", "fail", "pass", "fail", "fail"):
        monitor.record("db", _result(Status(status)))
    assert monitor.state("db").effective is Status.PASS


def test_it_recovers_only_after_rise_consecutive_successes() -> None:
    """With rise=2, one pass after a failure is not enough."""
    monitor = Monitor(_configs(("db", "critical")))
    monitor.record("db", _result(Status.FAIL))  # the first result counts as it is
    assert monitor.state("db").effective is Status.FAIL
    monitor.record("db", _result(Status.PASS))
    assert monitor.state("db").effective is Status.FAIL
    monitor.record("db", _result(Status.PASS))
    assert monitor.state("db").effective is Status.PASS


def test_warn_follows_the_latest_result_without_damping() -> None:
    """pass <-> warn both keep traffic, so they are not damped."""
    monitor = Monitor(_configs(("db", "critical")))
    monitor.record("db", _result(Status.PASS))
    monitor.record("db", _result(Status.WARN))
    assert monitor.state("db").effective is Status.WARN
    monitor.record("db", _result(Status.PASS))
    assert monitor.state("db").effective is Status.PASS


def test_it_records_every_effective_transition() -> None:
    """pending -> pass -> fail -> pass, each once, with from/to/output."""
    seen: list[Transition] = []
    monitor = Monitor(_configs(("db", "critical")), on_transition=seen.append)
    for status in ("pass", "fail", "fail", "fail", "fail", "pass", "pass", "pass"):
        monitor.record("db", _result(Status(status)))
    assert [(t.from_status, t.to_status) for t in seen] == [
        (None, "pass"),
        ("pass", "fail"),
        ("fail", "pass"),
    ]
    assert seen[1].output == "fail output"


def test_a_check_without_results_for_three_intervals_is_stale() -> None:
    """No result for 3 x interval turns the check to fail, and a new result clears it."""
    monitor = Monitor(_configs(("db", "critical")))
    start = time.time()
    monitor.record("db", _result(Status.PASS, start))
    monitor.tick(start + 29)
    assert monitor.snapshot.status is Status.PASS
    monitor.tick(start + 31)
    state = monitor.snapshot.checks["db"]
    assert state.effective is Status.FAIL
    assert state.output.startswith("Stale")
    assert monitor.snapshot.status is Status.FAIL
    monitor.record("db", _result(Status.PASS))
    assert monitor.snapshot.status is Status.PASS


def test_a_check_that_never_ran_becomes_stale() -> None:
    """A job that never runs at all is caught too."""
    monitor = Monitor(_configs(("db", "critical")))
    monitor.tick(time.time() + 31)
    assert monitor.state("db").stale


def test_only_critical_failures_fail_the_verdict() -> None:
    """critical fail -> fail; degraded fail -> warn; info fail -> no effect."""
    monitor = Monitor(_configs(("db", "critical"), ("vendor", "degraded"), ("extra", "info")))
    for name in ("db", "vendor", "extra"):
        monitor.record(name, _result(Status.PASS))
    assert monitor.snapshot.status is Status.PASS
    monitor.record("extra", _result(Status.FAIL))
    assert monitor.snapshot.status is Status.PASS
    monitor.record("vendor", _result(Status.FAIL))
    assert monitor.snapshot.status is Status.PASS  # fall=3: not yet
    monitor.record("vendor", _result(Status.FAIL))
    monitor.record("vendor", _result(Status.FAIL))
    assert monitor.snapshot.status is Status.WARN
    monitor.record("db", _result(Status.WARN))
    assert monitor.snapshot.status is Status.WARN
    for _ in range(3):
        monitor.record("db", _result(Status.FAIL))
    assert monitor.snapshot.status is Status.FAIL


def test_a_pending_critical_check_fails_the_verdict_and_readiness() -> None:
    """Until every critical check has a result, the verdict is fail and not ready."""
    monitor = Monitor(_configs(("db", "critical"), ("cache", "critical"), ("v", "degraded")))
    monitor.record("db", _result(Status.PASS))
    assert monitor.snapshot.status is Status.FAIL
    assert not monitor.snapshot.ready
    monitor.record("cache", _result(Status.PASS))
    assert monitor.snapshot.ready
    assert monitor.snapshot.status is Status.WARN  # the degraded check has no result yet


def test_snapshots_are_immutable_and_swapped_whole() -> None:
    """A snapshot taken before a result does not change after it."""
    monitor = Monitor(_configs(("db", "critical")))
    monitor.record("db", _result(Status.PASS))
    before = monitor.snapshot
    for _ in range(3):
        monitor.record("db", _result(Status.FAIL))
    assert before.status is Status.PASS
    assert before.checks["db"].effective is Status.PASS
    assert monitor.snapshot.status is Status.FAIL
    assert monitor.snapshot is not before


def test_a_transition_to_fail_carries_the_first_failing_run_of_its_streak() -> None:
    """fall=3 at 10 s: failing from t=100, detected at t=120; time to detect is measured."""
    sent: list[Transition] = []
    monitor = Monitor(_configs(("db", "critical")), on_transition=sent.append)
    monitor.record("db", _result(Status.PASS, 90.0))
    monitor.record("db", _result(Status.FAIL, 95.0))
    monitor.record("db", _result(Status.PASS, 97.0))  # an interrupted streak starts again
    for moment in (100.0, 110.0, 120.0):
        monitor.record("db", _result(Status.FAIL, moment))
    to_fail = sent[-1]
    assert (to_fail.to_status, to_fail.at.timestamp()) == ("fail", 120.0)
    assert to_fail.first_failure_at is not None
    assert to_fail.first_failure_at.timestamp() == 100.0
    monitor.record("db", _result(Status.PASS, 130.0))
    monitor.record("db", _result(Status.PASS, 140.0))
    assert (sent[-1].to_status, sent[-1].first_failure_at) == ("pass", None)


def test_the_verdict_is_sent_once_ready_and_on_every_change() -> None:
    """No verdict before the first round of critical checks; then each change, once."""
    sent: list[VerdictTransition] = []
    monitor = Monitor(_configs(("db", "critical"), ("ai", "degraded")), on_verdict=sent.append)
    monitor.record("ai", _result(Status.PASS, 10.0))
    assert sent == []
    monitor.record("db", _result(Status.PASS, 11.0))
    for moment in (20.0, 30.0, 40.0):
        monitor.record("db", _result(Status.FAIL, moment))
    monitor.record("db", _result(Status.FAIL, 50.0))
    assert [(v.from_status, v.to_status, v.at.timestamp()) for v in sent] == [
        (None, "pass", 11.0),
        ("pass", "fail", 40.0),
    ]


def test_a_backup_source_reports_each_new_backup_once() -> None:
    """A recovery point when a backup source first reports a backup, not on every run."""
    config = parse_config(
        {"checks": [{"name": "dumps", "type": "backup_files", "params": {"path": "/b"}}]}
    ).checks
    points: list[RecoveryPoint] = []
    monitor = Monitor(config, on_recovery_point=points.append)
    for backup_at, moment in (("2026-11-27T03:00:00Z", 1.0), ("2026-11-27T03:00:00Z", 2.0)):
        details = {"last_backup_at": backup_at, "size_bytes": 2048, "verified": True}
        monitor.record("dumps", Result(Status.PASS, "ok", time=_at(moment), details=details))
    details = {"last_backup_at": "2026-11-28T03:00:00Z", "location": "/b/backup_28.dump"}
    monitor.record("dumps", Result(Status.PASS, "ok", time=_at(3.0), details=details))
    assert [(p.backup_at.day, p.size_bytes, p.verified, p.location) for p in points] == [
        (27, 2048, True, None),
        (28, None, None, "/b/backup_28.dump"),
    ]


def _at(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)
