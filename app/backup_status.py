"""The answer to "how old is our newest usable backup, and does it restore?" for every source.

Built from the snapshot (backup sources' last results) and the drills' last runs held in memory,
so ``/api/backup-status`` does no I/O. Ages are computed at the time of the request from
``last_backup_at``, not copied from the last check run, so they never look younger than they are.

Verdict: ``fail`` (HTTP 503) when any source is outside its RPO, its newest backup failed
verification, or it has not reported yet; ``warn`` when a source's check warns (a suspiciously
small backup, say), a drill's last run failed or took longer than its RTO, or no backup source is
configured at all; else ``pass``.

The overall verdict is the only ``status`` key of the body, and its first: uptime monitors match
the keyword ``"status":"pass"``, which a passing source next to a failing one must not satisfy.
Sources carry their own ``verdict``, drill runs their ``result``.

Outputs (a source check's sentence, a drill's message) follow the details policy of ``/health``:
``outputs=False`` leaves them out; ages, RPOs, verification and drill timings stay public.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from app.checks.base import Status
from app.monitor import CheckState, Snapshot
from app.units import parse_timestamp, rfc3339

NO_SOURCE = "No backup source is configured: nothing proves this service can be restored."


def source_status(state: CheckState, now: float) -> dict[str, Any]:
    result = state.last_result
    details: Mapping[str, Any] = result.details if result else {}
    last_backup_at = parse_timestamp(details.get("last_backup_at"))
    last_backup = None if last_backup_at is None else last_backup_at.timestamp()
    rpo = details.get("rpo_seconds")
    if rpo is None:
        rpo = getattr(state.config.params, "rpo", None)
    age = None if last_backup is None else max(0.0, now - last_backup)
    within_rpo = age is not None and isinstance(rpo, int | float) and age <= rpo
    verified = details.get("verified")
    effective = state.effective
    if result is None or not within_rpo or verified is False:
        status = Status.FAIL
    elif effective is Status.FAIL:
        # Fresh and verified, yet the check fails (a newer file is corrupt, say): say so, but
        # the recovery point is still met.
        status = Status.WARN
    else:
        status = effective or Status.FAIL
    return {
        "name": state.name,
        "type": state.config.type,
        "verdict": status.value,
        "last_backup_at": (
            rfc3339(datetime.fromtimestamp(last_backup, UTC)) if last_backup else None
        ),
        "age_seconds": None if age is None else round(age, 3),
        "rpo_seconds": rpo,
        "within_rpo": within_rpo,
        "size_bytes": details.get("size_bytes"),
        "verified": verified,
        "verified_by": details.get("verified_by"),
        "location": details.get("location"),
        "last_checked_at": rfc3339(result.time) if result else None,
        "output": state.output,
    }


def drill_status(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A drill's configuration and last finished run, as listed under ``drills``."""
    last = summary.get("last_run")
    run = None
    if last:
        run = {
            key: last.get(key)
            for key in (
                "run_id",
                "started_at",
                "finished_at",
                "total_seconds",
                "restore_seconds",
                "rto_seconds",
                "within_rto",
                "data_loss_seconds",
                "message",
                "integrity",
                "skipped_backups",
            )
        }
        run["result"] = last.get("status")
        run["backup"] = {
            "location": last.get("backup_location"),
            "time": last.get("backup_time"),
            "size_bytes": last.get("backup_size_bytes"),
        }
    return {
        "name": summary["name"],
        "source": summary["source"],
        "schedule": summary["schedule"],
        "rto_seconds": summary["rto_seconds"],
        "running": summary.get("running", False),
        "last_success_at": summary.get("last_success_at"),
        "last_run": run,
    }


def backup_status(
    snapshot: Snapshot,
    drills: Sequence[Mapping[str, Any]],
    now: float | None = None,
    *,
    outputs: bool = True,
) -> dict[str, Any]:
    now = time.time() if now is None else now
    sources = [source_status(state, now) for state in snapshot.backup_sources()]
    drill_rows = [drill_status(d) for d in drills]
    if not outputs:
        for source in sources:
            del source["output"]
        for drill in drill_rows:
            if drill["last_run"]:
                del drill["last_run"]["message"]
    statuses = [Status(s["verdict"]) for s in sources]
    for drill in drill_rows:
        run = drill["last_run"]
        if run and (run.get("result") != "pass" or run.get("within_rto") is False):
            statuses.append(Status.WARN)
    report: dict[str, Any] = {"status": Status.worst(*statuses).value}
    if not sources:
        report["status"] = Status.WARN.value
        report["output"] = NO_SOURCE
    report.update(
        generated_at=rfc3339(datetime.fromtimestamp(now, UTC)),
        service_id=snapshot.service_id,
        sources=sources,
        drills=drill_rows,
    )
    return report
