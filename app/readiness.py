"""The answer to "could the standby region take over now, and what would it cost?".

Built from the snapshot (the prerequisites' last results), the configuration and the drills'
runs held in memory, so ``/api/dr-readiness`` and the ``drwatch_dr_*`` metrics do no I/O.

* Prerequisites: ``dr_readiness.checks``, else every check labelled ``region: dr``. The standby
  is ready when none of them fails, is stale or has not reported yet; a warning is shown but
  does not block.
* Expected data loss: among the prerequisites whose type names a ``failover_data_loss_key``
  (a replica's lag, the newest replicated backup), the figure of the lowest rank; it is held
  against the RPO (``dr_readiness.rpo``, else that check's ``rpo_seconds``).
* Expected recovery time: the total of the last successful run of the drills that restore into
  an instance (or ``dr_readiness.drills``), else the RTO. Slower than the RTO blocks, and so does
  a last run that failed: until one passes, nobody knows the standby's data restores.

Every blocker is a sentence a person can act on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.checks.base import Status
from app.config import Config
from app.monitor import CheckState, Snapshot
from app.units import format_duration, parse_timestamp

if TYPE_CHECKING:
    from app.drills.service import DrillService

# The plans' RTO, used when neither dr_readiness nor a drill sets one.
DEFAULT_RTO = 4 * 3600.0


@dataclass(frozen=True)
class DrillRuns:
    """What the drills' history says, per drill: its RTO, last finished run, last success."""

    rto_seconds: float
    last_run: Mapping[str, Any] | None
    last_success: Mapping[str, Any] | None


@dataclass(frozen=True)
class _DataLoss:
    seconds: float
    check: str
    basis: str
    failing: bool
    rank: int
    rpo_seconds: float | None


def drill_runs(service: DrillService) -> dict[str, DrillRuns]:
    """Each drill's history as the shared history knows it (whichever replica ran it)."""
    found = {}
    for summary in service.summaries():
        name = summary["name"]
        success: Mapping[str, Any] | None = service.last_successes.get(name)
        found[name] = DrillRuns(summary["rto_seconds"], summary.get("last_run"), success)
    return found


def readiness_drills(config: Config) -> list[str]:
    """The drills whose last successful run says how long a recovery takes."""
    if config.dr_readiness is not None and config.dr_readiness.drills is not None:
        return list(config.dr_readiness.drills)
    return [
        drill.name
        for drill in config.drills
        if (source := config.check(drill.source)) is not None
        and source.check_class.restore_kind == "instance"
    ]


def dr_readiness(
    snapshot: Snapshot,
    config: Config,
    drills: Mapping[str, DrillRuns],
    now: float | None = None,
) -> dict[str, Any] | None:
    """The readiness answer, or None when no prerequisite is configured."""
    prerequisites = config.readiness_checks()
    if not prerequisites:
        return None
    now = time.time() if now is None else now
    states = [snapshot.checks[c.name] for c in prerequisites if c.name in snapshot.checks]
    blockers: list[str] = []
    rows = []
    for state in states:
        rows.append(_row(state))
        effective = state.effective
        if effective is None:
            blockers.append(
                f"{state.name} has not reported yet; readiness is unknown until it has."
            )
        elif state.stale:
            blockers.append(f"{state.name}: {state.output}")
        elif effective is Status.FAIL:
            blockers.append(state.output)

    spec = config.dr_readiness
    loss = _expected_data_loss(states, now)
    rpo = spec.rpo if spec is not None and spec.rpo is not None else None
    if rpo is None and loss is not None:
        rpo = loss.rpo_seconds
    if loss is not None and rpo is not None and loss.seconds > rpo and not loss.failing:
        blockers.append(
            f"Failing over now loses up to {format_duration(loss.seconds)} of data "
            f"({loss.basis}, reported by {loss.check}), more than the RPO of "
            f"{format_duration(rpo)}."
        )

    names = readiness_drills(config)
    rto = _rto(config, names, drills)
    recovery, recovery_basis = _expected_recovery(names, drills, rto, blockers)

    failing = bool(blockers)
    warning = any(s.effective is Status.WARN for s in states)
    status = Status.FAIL if failing else Status.WARN if warning else Status.PASS
    return {
        "status": status.value,
        "ready": not failing,
        "generated_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "service_id": snapshot.service_id,
        "checks": rows,
        "if_failed_over_now": {
            "expected_data_loss_seconds": None if loss is None else round(loss.seconds, 3),
            "expected_recovery_seconds": round(recovery, 3),
            "rpo_seconds": rpo,
            "rto_seconds": rto,
            "basis": {
                "data_loss": (
                    f"{loss.basis}, reported by {loss.check}"
                    if loss is not None
                    else "no prerequisite reports a replica lag or a replicated backup"
                ),
                "recovery": recovery_basis,
            },
        },
        "blockers": blockers,
    }


def _row(state: CheckState) -> dict[str, Any]:
    result = state.last_result
    return {
        "name": state.name,
        "type": state.config.type,
        "status": state.effective.value if state.effective else "pending",
        "since": state.since.isoformat() if state.since else None,
        "output": state.output,
        "last_checked_at": result.time.isoformat() if result else None,
    }


def _expected_data_loss(states: Sequence[CheckState], now: float) -> _DataLoss | None:
    found: list[_DataLoss] = []
    for state in states:
        cls = state.config.check_class
        key = cls.failover_data_loss_key
        result = state.last_result
        if key is None or result is None:
            continue
        value = result.details.get(key)
        seconds: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str):
            # A recovery point: what a failover keeps; it ages while nothing newer arrives.
            point = parse_timestamp(value)
            seconds = None if point is None else max(0.0, now - point.timestamp())
        if seconds is None:
            continue
        rpo = result.details.get("rpo_seconds")
        found.append(
            _DataLoss(
                seconds=seconds,
                check=state.name,
                basis=cls.failover_data_loss_basis or key,
                failing=state.effective is not Status.PASS and state.effective is not Status.WARN,
                rank=cls.failover_data_loss_rank,
                rpo_seconds=float(rpo) if isinstance(rpo, int | float) else None,
            )
        )
    # The most precise kind first (a type reports no figure when what it watches could not be
    # failed over to, such as a replica that is not available), then passing checks', then the
    # worst of equals.
    found.sort(key=lambda f: (f.rank, f.failing, -f.seconds))
    return found[0] if found else None


def _rto(config: Config, names: Sequence[str], drills: Mapping[str, DrillRuns]) -> float:
    if config.dr_readiness is not None and config.dr_readiness.rto is not None:
        return config.dr_readiness.rto
    objectives = [drills[name].rto_seconds for name in names if name in drills]
    return min(objectives) if objectives else DEFAULT_RTO


def _expected_recovery(
    names: Sequence[str], drills: Mapping[str, DrillRuns], rto: float, blockers: list[str]
) -> tuple[float, str]:
    successes = []
    for name in names:
        runs = drills.get(name)
        if runs is None:
            continue
        last = runs.last_run
        if last and last.get("status") == "fail" and last.get("finished_at"):
            blockers.append(
                f"The last restore drill {name} failed ({last.get('message') or 'no message'}); "
                "until one passes, nobody knows the standby's data restores."
            )
        success = runs.last_success
        total = success.get("total_seconds") if success else None
        if success and isinstance(total, int | float):
            successes.append((str(success.get("finished_at") or ""), name, float(total)))
    if not successes:
        return rto, (
            f"no successful restore drill yet; the RTO of {format_duration(rto)}"
            if names
            else f"no restore drill restores into an instance; the RTO of {format_duration(rto)}"
        )
    finished_at, name, total = max(successes)
    when = finished_at[:10] or "an earlier run"
    if total > rto:
        blockers.append(
            f"Recovery would take about {format_duration(total)} (restore drill {name} on "
            f"{when}), longer than the RTO of {format_duration(rto)}."
        )
    return total, f"last successful restore drill {name} on {when}"
