"""What a drill run found: :class:`DrillReport` (stored as JSON, shown by the API and the CLI),
how a run's outcome becomes its status and sentence (:func:`conclude`, shared by dump and RDS
drills), its :func:`render_report` for people, and the progress lines a run says as it goes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from app import redact
from app.units import format_duration, format_size, rfc3339

log = logging.getLogger("drwatch.drills")

DrillStatus = Literal["pass", "fail"]


@dataclass
class IntegrityResult:
    name: str
    passed: bool
    observed: Any
    expectation: str
    message: str
    source_value: Any = None


@dataclass
class DrillReport:
    """What one drill run did and found. ``as_dict()`` is JSON-serializable."""

    run_id: str
    drill: str
    database: str
    started_at: datetime
    finished_at: datetime | None = None
    backup_location: str = ""
    backup_time: datetime | None = None
    backup_size_bytes: int | None = None
    backup_format: str | None = None
    restore_seconds: float | None = None
    total_seconds: float | None = None
    rto_seconds: float = 0.0
    within_rto: bool | None = None
    integrity: list[IntegrityResult] = field(default_factory=list)
    data_loss_seconds: float | None = None
    status: DrillStatus = "fail"
    message: str = ""
    database_dropped: bool = False
    # Newer backups the drill passed over because they failed verification ("name: why").
    skipped_backups: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {key: json_value(value) for key, value in data.items()}


def render_report(report: DrillReport) -> str:
    """The report as a few lines of plain text, for ``drwatch drill run``."""
    lines = [
        f"drill {report.drill}: {report.status.upper()} (run {report.run_id})",
        f"  {report.message}",
        f"  backup: {report.backup_location or '-'}"
        + (f" taken {rfc3339(report.backup_time)}" if report.backup_time else "")
        + (f", {format_size(report.backup_size_bytes)}" if report.backup_size_bytes else "")
        + (f", {report.backup_format}" if report.backup_format else ""),
    ]
    lines += [f"  skipped newer backup {skipped}" for skipped in report.skipped_backups]
    if report.total_seconds is not None:
        restore = (
            format_duration(report.restore_seconds) if report.restore_seconds is not None else "-"
        )
        lines.append(
            f"  restore {restore}, total {format_duration(report.total_seconds)}, "
            f"RTO {format_duration(report.rto_seconds)}"
        )
    if report.data_loss_seconds is not None:
        lines.append(f"  data-loss window: {format_duration(report.data_loss_seconds)}")
    for result in report.integrity:
        mark = "+" if result.passed else "-"
        lines.append(f"  [{mark}] {result.name}: {result.message}")
    return "\n".join(lines)


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # A value read from a `timestamp without time zone` column has no zone: it is shown as
        # it was stored rather than claimed to be UTC.
        return rfc3339(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def show(value: Any) -> str:
    """A query's value in a sentence: ``42``, ``0.5``, ``2026-11-21T03:00:00+00:00``."""
    shown = json_value(value)
    return f"{shown:g}" if isinstance(shown, float) else str(shown)


def say(progress: Callable[[str], None] | None, line: str) -> None:
    """Log a progress line and hand it to ``progress`` (the CLI prints it), scrubbed of secrets."""
    line = redact.scrub(line)
    log.info(line)
    if progress is not None:
        progress(line)


def conclude(
    report: DrillReport,
    rto: float,
    backup_time: datetime,
    failure: str | None,
    cleanup_error: str | None,
    started: float,
    *,
    cleanup_failure: str | None = None,
) -> None:
    """Time the run (``started`` from ``time.perf_counter()``) and set its status and message:
    the first failure, else the first failed integrity check, else a clean-up that failed
    (``cleanup_failure`` says so when ``cleanup_error`` is set; else the drill database's).
    """
    report.finished_at = datetime.now(UTC)
    report.total_seconds = time.perf_counter() - started
    report.within_rto = report.total_seconds <= rto
    failed_checks = [r for r in report.integrity if not r.passed]
    if failure is None and failed_checks:
        first = failed_checks[0]
        more = f" ({len(failed_checks) - 1} more failed)" if len(failed_checks) > 1 else ""
        failure = f"Integrity check {first.name!r} failed{more}: {first.message}"
    if failure is None and cleanup_error is not None:
        failure = cleanup_failure or (
            f"The drill database {report.database} could not be dropped ({cleanup_error}); the "
            "next run removes it."
        )
    if failure is not None:
        report.status = "fail"
        report.message = redact.scrub(failure)
    else:
        report.status = "pass"
        size = f" ({format_size(report.backup_size_bytes)})" if report.backup_size_bytes else ""
        taken = f"{backup_time.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        rto_note = (
            f"within the RTO of {format_duration(rto)}"
            if report.within_rto
            else f"over the RTO of {format_duration(rto)}: recovery would take longer "
            "than the plan allows"
        )
        report.message = (
            f"Restored the {taken} backup{size} in {format_duration(report.total_seconds)}, "
            f"{rto_note}; "
            + (
                f"all {len(report.integrity)} integrity checks passed."
                if report.integrity
                else "no integrity checks are configured, so only the restore itself was tested."
            )
        )
