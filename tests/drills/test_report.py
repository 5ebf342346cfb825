"""What a drill run found, as JSON for the store and the API and as text for a person."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from app.drills.report import DrillReport, IntegrityResult, render_report

STARTED = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


def failed_report() -> DrillReport:
    return DrillReport(
        run_id="r1",
        drill="monthly",
        database="drwatch_drill_monthly_20261121030000",
        started_at=STARTED,
        finished_at=STARTED + timedelta(minutes=5),
        backup_location="/backups/backup_20261121.dump",
        backup_time=STARTED - timedelta(hours=1),
        backup_size_bytes=2_500_000,
        backup_format="custom",
        restore_seconds=240.0,
        total_seconds=300.0,
        rto_seconds=3600.0,
        within_rto=True,
        integrity=[
            IntegrityResult("leads", True, Decimal("50"), ">= 1", "50 >= 1"),
            IntegrityResult("ratio", False, Decimal("0.25"), "== 1", "Observed 0.25, expected 1"),
            IntegrityResult("newest", True, date(2026, 11, 20), "within RPO of backup", "ok"),
        ],
        data_loss_seconds=120.0,
        message="Integrity check 'ratio' failed: Observed 0.25, expected == 1",
    )


def test_a_report_serializes_database_values_to_plain_json() -> None:
    """Decimals become ints or floats, times RFC 3339 in UTC; the dict survives json.dumps."""
    data = json.loads(json.dumps(failed_report().as_dict()))
    assert data["status"] == "fail"
    assert data["started_at"] == "2026-11-21T03:00:00Z"
    assert [r["observed"] for r in data["integrity"]] == [50, 0.25, "2026-11-20"]
    assert data["backup_time"] == "2026-11-21T02:00:00Z"


def test_a_report_reads_as_a_few_lines_for_a_person() -> None:
    """Status, message, backup, timings and one marked line per integrity check."""
    text = render_report(failed_report())
    lines = text.splitlines()
    assert lines[0] == "drill monthly: FAIL (run r1)"
    assert lines[2] == (
        "  backup: /backups/backup_20261121.dump taken 2026-11-21T02:00:00Z, 2.5 MB, custom"
    )
    assert "  restore 4m, total 5m, RTO 1h" in lines
    assert "  data-loss window: 2m" in lines
    assert "  [+] leads: 50 >= 1" in lines
    assert "  [-] ratio: Observed 0.25, expected 1" in lines
