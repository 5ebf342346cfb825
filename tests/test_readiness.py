"""How the readiness answer reads the prerequisites' results and the drills' history: which
figure is the expected data loss, which run times the recovery, and what blocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.checks.base import Result, Status
from app.config import parse_config
from app.monitor import Monitor
from app.readiness import DrillRuns, dr_readiness

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def config(**extra: Any) -> Any:
    return parse_config(
        {
            "checks": [
                {
                    "name": "replica",
                    "type": "rds_replica",
                    "labels": {"region": "dr"},
                    "params": {"db_instance_identifier": "lyo-replica", "rpo": "15m"},
                },
                {
                    "name": "dr-backups",
                    "type": "s3_replication",
                    "labels": {"region": "dr"},
                    "params": {"bucket": "lyo-backups", "dr_bucket": "lyo-backups-dr"},
                },
                {
                    "name": "snapshots",
                    "type": "rds",
                    "params": {"db_instance_identifier": "lyo", "region": "eu-west-1"},
                },
            ],
            "drills": [
                {
                    "name": "monthly-rds",
                    "source": "snapshots",
                    "rds": {"password_file": "/run/secrets/lyo-db-password"},
                    "rto": "4h",
                }
            ],
            **extra,
        }
    )


def monitor_with(cfg: Any, results: dict[str, Result]) -> Monitor:
    monitor = Monitor(cfg.checks)
    for name, result in results.items():
        monitor.record(name, result)
    return monitor


def replica(lag: float | None, status: Status = Status.PASS) -> Result:
    return Result(
        status, f"replica {lag}", details={"replica_lag_seconds": lag, "rpo_seconds": 900}
    )


def backups(hours_ago: float, status: Status = Status.PASS) -> Result:
    at = (NOW - timedelta(hours=hours_ago)).isoformat()
    return Result(
        status, "backups", details={"last_replicated_backup_at": at, "rpo_seconds": 86400}
    )


def answer(cfg: Any, results: dict[str, Result], drills: dict[str, DrillRuns] | None = None) -> Any:
    snapshot = monitor_with(cfg, results).snapshot
    return dr_readiness(snapshot, cfg, drills or {}, now=NOW.timestamp())


def drill(total: float | None, last_status: str = "pass") -> DrillRuns:
    success = None
    if total is not None:
        success = {"status": "pass", "total_seconds": total, "finished_at": "2026-11-01T03:40:00"}
    last = {"status": last_status, "finished_at": "2026-11-01T03:40:00", "message": "boom"}
    return DrillRuns(4 * 3600.0, last, success)


def test_the_replica_lag_is_preferred_to_the_backups_age() -> None:
    """A replica's lag is the more precise figure of what a failover loses."""
    found = answer(config(), {"replica": replica(40), "dr-backups": backups(6)})
    cost = found["if_failed_over_now"]
    assert cost["expected_data_loss_seconds"] == 40
    assert cost["rpo_seconds"] == 900
    assert cost["basis"]["data_loss"] == (
        "ReplicaLag of the cross-region read replica, reported by replica"
    )


def test_without_a_promotable_replica_the_backups_age_is_the_loss() -> None:
    """A replica that reports no figure leaves the newest replicated backup, aged to now."""
    found = answer(config(), {"replica": replica(None, Status.FAIL), "dr-backups": backups(6)})
    cost = found["if_failed_over_now"]
    assert cost["expected_data_loss_seconds"] == 6 * 3600
    assert cost["rpo_seconds"] == 86400
    assert found["ready"] is False


def test_a_pending_prerequisite_blocks() -> None:
    """Unknown is not ready."""
    found = answer(config(), {"dr-backups": backups(1)})
    assert found["ready"] is False
    assert found["blockers"] == ["replica has not reported yet; readiness is unknown until it has."]
    assert found["checks"][0]["status"] == "pending"


def test_a_warning_is_shown_but_does_not_block() -> None:
    """A backup still on its way to the DR bucket warns; the standby is still ready."""
    found = answer(config(), {"replica": replica(40), "dr-backups": backups(1, Status.WARN)})
    assert found["ready"] is True and found["status"] == "warn"


def test_the_last_successful_drill_times_the_recovery() -> None:
    """The drill that restores into an instance gives the expected recovery time."""
    found = answer(
        config(), {"replica": replica(40), "dr-backups": backups(1)}, {"monthly-rds": drill(2280)}
    )
    cost = found["if_failed_over_now"]
    assert cost["expected_recovery_seconds"] == 2280
    assert cost["basis"]["recovery"] == "last successful restore drill monthly-rds on 2026-11-01"
    assert found["ready"] is True


def test_without_a_successful_drill_the_rto_is_the_recovery_time() -> None:
    """No success yet: the plan's RTO, said as such."""
    found = answer(config(), {"replica": replica(40), "dr-backups": backups(1)})
    cost = found["if_failed_over_now"]
    assert cost["expected_recovery_seconds"] == 4 * 3600
    assert cost["basis"]["recovery"] == "no successful restore drill yet; the RTO of 4h"


def test_a_drill_slower_than_the_rto_blocks() -> None:
    """Recovering would take longer than the plan allows."""
    found = answer(
        config(),
        {"replica": replica(40), "dr-backups": backups(1)},
        {"monthly-rds": drill(5 * 3600)},
    )
    assert found["ready"] is False
    assert found["blockers"] == [
        "Recovery would take about 5h (restore drill monthly-rds on 2026-11-01), longer than "
        "the RTO of 4h."
    ]


def test_a_failed_last_drill_blocks() -> None:
    """Until a drill passes again, nobody knows the standby's data restores."""
    found = answer(
        config(),
        {"replica": replica(40), "dr-backups": backups(1)},
        {"monthly-rds": drill(2280, last_status="fail")},
    )
    assert found["ready"] is False
    assert "The last restore drill monthly-rds failed (boom)" in found["blockers"][0]


def test_the_configured_rpo_blocks_a_loss_no_check_fails_for() -> None:
    """dr_readiness.rpo tighter than the replica's own: the loss itself becomes a blocker."""
    found = answer(
        config(dr_readiness={"rpo": "30s"}), {"replica": replica(40), "dr-backups": backups(1)}
    )
    assert found["blockers"] == [
        "Failing over now loses up to 40s of data (ReplicaLag of the cross-region read replica, "
        "reported by replica), more than the RPO of 30s."
    ]


def test_nothing_configured_is_none() -> None:
    """Without prerequisites there is no answer to give."""
    cfg = parse_config({"checks": [{"name": "a", "type": "s3", "params": {"bucket": "abc"}}]})
    assert dr_readiness(Monitor(cfg.checks).snapshot, cfg, {}) is None
