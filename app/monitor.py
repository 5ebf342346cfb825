"""The state of every check, the overall verdict, and the immutable snapshot endpoints read.

Per check, a rise/fall state machine damps flapping: a passing check becomes ``fail`` only after
``fall`` consecutive failing results, a failing one recovers only after ``rise`` consecutive
passing results. Between pass and warn there is no damping (both keep traffic). The first result
after start-up is taken as it is. A check with no result for ``3 x interval`` is ``fail``
("stale"): drwatch never reports healthy when it does not know.

Inside an open maintenance window (:mod:`app.history.maintenance`) a check whose effective status
is ``fail`` is reported ``warn`` (unless the window says ``failover: true``): the verdict, the API
and the metrics read that, while transitions record the real status. The monitor knows the next
moment a window opens or closes and re-evaluates then (and whenever ad hoc windows change), so a
window's end applies at once: a check that was really passing is ``pass`` without a rise wait.

The verdict: the worst effective status over critical checks; a failing or warning degraded check
lowers it to ``warn`` at most; info checks never change it. A critical check with no result yet
counts as failing.

What happened goes out through sinks (the runtime writes them to the state store): a
:class:`Transition` on every effective state change of a check (to ``fail``: with the time of the
first failing run of the streak, so time to detect is measured), a :class:`VerdictTransition` on
every change of the verdict (the first once the first round of critical checks is in), and a
:class:`RecoveryPoint` whenever a backup source reports a backup it had not reported before.

Beside the configured checks there is one built-in check, ``drwatch`` (:class:`SelfCheck`):
drwatch's own load, reported by the scheduler. It is ``warn`` while the engine is saturated and
never ``fail`` (a busy drwatch must not fail a region over), so it lowers the verdict to ``warn``
at most. It cannot be configured away, and no configured check may take its name.

After every result the monitor swaps in a new :class:`Snapshot` (one attribute assignment, so a
reader sees either the old or the new one, never a mix). Keeping the verdict costs O(1) per result:
the monitor counts checks per (criticality, effective status) instead of rescanning them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from app.checks.base import Result, Status
from app.config import CheckConfig
from app.history.maintenance import MaintenanceSchedule, OpenWindow
from app.store.repository import RecoveryPoint, Transition, VerdictTransition
from app.units import format_duration, parse_timestamp, rfc3339

log = logging.getLogger("drwatch.monitor")

STALE_FACTOR = 3
PENDING = "pending"
SELF_CHECK = "drwatch"


@dataclass(frozen=True, slots=True)
class SelfCheck:
    """The built-in check ``drwatch``: whether drwatch starts every due check run in time."""

    status: Status = Status.PASS
    output: str = "drwatch starts every due check run within its interval."

    def as_dict(self) -> dict[str, Any]:
        return {"name": SELF_CHECK, "status": self.status.value, "output": self.output}


@dataclass(frozen=True, slots=True)
class CheckState:
    """Everything known about one check at one moment."""

    config: CheckConfig
    status: Status | None = None  # damped status from results; None until the first result
    last_result: Result | None = None
    consecutive_ok: int = 0
    consecutive_fail: int = 0
    since: datetime | None = None  # when the actual status last changed
    failing_since: datetime | None = None  # the first failing run of the current failing streak
    stale: bool = False
    runs: Mapping[str, int] = field(default_factory=lambda: {"pass": 0, "warn": 0, "fail": 0})
    maintenance: OpenWindow | None = None  # the open maintenance window covering the check

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def actual(self) -> Status | None:
        """The damped status, maintenance aside: fail while stale, None before any result.
        Transitions record this one."""
        if self.stale:
            return Status.FAIL
        return self.status

    @property
    def effective(self) -> Status | None:
        """The status that counts and shows: :attr:`actual`, except that a fail inside a
        maintenance window without failover reads warn."""
        actual = self.actual
        if actual is Status.FAIL and self.maintenance and not self.maintenance.failover:
            return Status.WARN
        return actual

    @property
    def verdict_status(self) -> Status:
        """Status as the verdict sees it: no result yet counts as fail."""
        return self.effective or Status.FAIL

    @property
    def damping(self) -> str | None:
        """What flap damping is holding back, or None: the latest run disagrees with the state.

        While a failing check recovers its latest output is a passing one (and the other way
        round), so a reader needs this to make sense of a ``fail`` next to a passing sentence.
        """
        if self.stale or self.status is None or self.last_result is None:
            return None
        if self.status is Status.FAIL and self.last_result.status is not Status.FAIL:
            return f"recovering: {self.consecutive_ok} of {self.config.rise} passing runs"
        if self.status is not Status.FAIL and self.last_result.status is Status.FAIL:
            return f"failing: {self.consecutive_fail} of {self.config.fall} failing runs"
        return None

    @property
    def output(self) -> str:
        if self.maintenance is not None and self.actual is Status.FAIL:
            return self.maintenance.explain(self._output)
        return self._output

    @property
    def _output(self) -> str:
        if self.stale:
            age = (
                format_duration(time.time() - self.last_result.time.timestamp())
                if self.last_result
                else "ever"
            )
            return (
                f"Stale: no result for {age} (interval {format_duration(self.config.interval)}); "
                "the scheduler may be stuck or the check keeps overrunning."
            )
        if self.last_result is None:
            return "No result yet; the first run is pending."
        return self.last_result.output

    def as_dict(self, *, details: bool = True) -> dict[str, Any]:
        effective = self.effective
        data: dict[str, Any] = {
            "name": self.name,
            "type": self.config.type,
            "criticality": self.config.criticality,
            "status": effective.value if effective else PENDING,
            "since": rfc3339(self.since) if self.since else None,
            "interval_seconds": self.config.interval,
            "timeout_seconds": self.config.timeout,
            "labels": dict(self.config.labels),
            "maintenance": self.maintenance.as_dict() if self.maintenance else None,
        }
        if details:
            data["output"] = self.output
            data["damping"] = self.damping
            data["stale"] = self.stale
            data["consecutive_failures"] = self.consecutive_fail
            data["consecutive_successes"] = self.consecutive_ok
            data["last_result"] = self.last_result.as_dict() if self.last_result else None
            data["runs"] = dict(self.runs)
        return data


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of all checks; endpoints and the metrics collector read only this."""

    checks: Mapping[str, CheckState]
    status: Status
    ready: bool
    generated_at: datetime
    service_id: str
    version: str
    self_check: SelfCheck = SelfCheck()
    # Renderings of this snapshot (app/api/render.py), made once and served as bytes.
    rendered: dict[str, bytes] = field(default_factory=dict, init=False, compare=False, repr=False)

    def backup_sources(self) -> list[CheckState]:
        return [s for s in self.checks.values() if s.config.check_class.is_backup_source]


TransitionSink = Callable[[Transition], None]
VerdictSink = Callable[[VerdictTransition], None]
RecoveryPointSink = Callable[[RecoveryPoint], None]


class Monitor:
    """Owns the per-check state machines and publishes snapshots."""

    def __init__(
        self,
        configs: Iterable[CheckConfig],
        *,
        service_id: str = "drwatch",
        version: str = "0",
        on_transition: TransitionSink | None = None,
        on_verdict: VerdictSink | None = None,
        on_recovery_point: RecoveryPointSink | None = None,
        maintenance: MaintenanceSchedule | None = None,
    ) -> None:
        self._states: dict[str, CheckState] = {c.name: CheckState(config=c) for c in configs}
        self._service_id = service_id
        self._version = version
        self._on_transition = on_transition
        self._on_verdict = on_verdict
        self._on_recovery_point = on_recovery_point
        # The last verdict sent to on_verdict; None until the first round of critical checks.
        self._verdict_sent: Status | None = None
        self._self_check = SelfCheck()
        self._started = time.time()
        # (criticality, verdict status) -> number of checks; keeps the verdict O(1) per result.
        self._counts: Counter[tuple[str, Status]] = Counter(
            (s.config.criticality, s.verdict_status) for s in self._states.values()
        )
        self._pending_critical = sum(
            1 for s in self._states.values() if s.config.criticality == "critical"
        )
        # The earliest moment a check may turn stale. Staleness is judged when the snapshot is
        # read, not by a scheduler job: a scheduler that stopped must not freeze the verdict.
        # Results only move deadlines later, so this may be early (never late); an early one
        # costs one O(checks) pass in tick() that finds the true next deadline.
        self._next_stale_at = self._started + STALE_FACTOR * min(
            (s.config.interval for s in self._states.values()), default=float("inf")
        )
        # The next moment a maintenance window opens or closes, judged like staleness: when
        # the snapshot is read, so a window's end shows at once even between ticks.
        self._maintenance = maintenance
        self._next_maintenance_at = float("inf")
        if maintenance is not None:
            maintenance.subscribe(self.maintenance_changed)
            self._apply_maintenance(self._started)
        self._snapshot = self._build_snapshot(datetime.fromtimestamp(self._started, UTC))

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot, with checks past their staleness deadline marked stale and
        maintenance windows applied as of now."""
        now = time.time()
        if now > self._next_stale_at or now >= self._next_maintenance_at:
            self.tick(now)
        return self._snapshot

    def state(self, name: str) -> CheckState:
        return self._states[name]

    def record(self, name: str, result: Result) -> CheckState:
        """Feed one result into the state machine of check ``name`` and publish a snapshot."""
        old = self._states[name]
        new = advance(old, result)
        if self._on_recovery_point is not None and new.config.check_class.is_backup_source:
            self._note_recovery_point(old, new)
        deadline = result.time.timestamp() + STALE_FACTOR * new.config.interval
        self._next_stale_at = min(self._next_stale_at, deadline)
        self._replace(old, new, result.time)
        return new

    def report_self(self, self_check: SelfCheck) -> None:
        """Publish drwatch's own state (the built-in check ``drwatch``) when it changed."""
        if self_check.status is Status.FAIL:
            self_check = replace(self_check, status=Status.WARN)  # never fail, see above
        if self_check != self._self_check:
            if self_check.status is not self._self_check.status:
                log.log(
                    logging.WARNING if self_check.status is not Status.PASS else logging.INFO,
                    "check changed state",
                    extra={
                        "check": SELF_CHECK,
                        "from": self._self_check.status.value,
                        "status": self_check.status.value,
                        "output": self_check.output,
                    },
                )
            self._self_check = self_check
            self._snapshot = self._build_snapshot(datetime.now(UTC))

    def tick(self, now: float | None = None) -> None:
        """Mark checks stale whose last result (or start-up) is older than 3 x interval, and
        apply maintenance windows that opened or closed since the last boundary."""
        now = time.time() if now is None else now
        changed = now >= self._next_maintenance_at and self._apply_maintenance(now)
        next_stale_at = float("inf")
        for old in list(self._states.values()):
            reference = old.last_result.time.timestamp() if old.last_result else self._started
            deadline = reference + STALE_FACTOR * old.config.interval
            stale = now > deadline
            if not stale:
                next_stale_at = min(next_stale_at, deadline)
            if stale != old.stale:
                at = datetime.fromtimestamp(now, UTC)
                self._replace(old, replace(old, stale=stale), at, publish=False)
                changed = True
        self._next_stale_at = next_stale_at
        if changed:
            self._snapshot = self._build_snapshot(datetime.fromtimestamp(now, UTC))

    def maintenance_changed(self) -> None:
        """Ad hoc windows were started or ended: apply them now and publish."""
        now = time.time()
        if self._apply_maintenance(now):
            self._snapshot = self._build_snapshot(datetime.fromtimestamp(now, UTC))

    def _apply_maintenance(self, now: float) -> bool:
        """Put each check in the window open at ``now`` (or none); True if any check moved."""
        if self._maintenance is None:
            return False
        at = datetime.fromtimestamp(now, UTC)
        open_windows = self._maintenance.open_by_check(at)
        changed = False
        for old in list(self._states.values()):
            window = open_windows.get(old.name)
            if window != old.maintenance:
                self._replace(old, replace(old, maintenance=window), at, publish=False)
                changed = True
        boundary = self._maintenance.next_boundary(at)
        self._next_maintenance_at = boundary.timestamp() if boundary else float("inf")
        return changed

    def _replace(
        self, old: CheckState, new: CheckState, at: datetime, *, publish: bool = True
    ) -> None:
        if old.actual != new.actual:
            new = replace(new, since=at)
            self._emit(old, new, at)
        # A window opening or closing changes what counts without a transition of the check.
        if old.verdict_status != new.verdict_status:
            self._counts[(old.config.criticality, old.verdict_status)] -= 1
            self._counts[(new.config.criticality, new.verdict_status)] += 1
        first_result = old.last_result is None and new.last_result is not None
        if first_result and new.config.criticality == "critical":
            self._pending_critical -= 1
        self._states[new.name] = new
        if publish:
            self._snapshot = self._build_snapshot(at)

    def _emit(self, old: CheckState, new: CheckState, at: datetime) -> None:
        before = old.actual.value if old.actual else None
        after = new.actual.value if new.actual else PENDING
        level = logging.WARNING if new.actual is Status.FAIL else logging.INFO
        log.log(
            level,
            "check changed state",
            extra={
                "check": new.name,
                "from": before or PENDING,
                "status": after,
                "duration": new.last_result.duration if new.last_result else None,
                "output": new.output,
            },
        )
        if self._on_transition is not None:
            # Stale, or failing from the first result: the failure is first seen now.
            first_failure = (new.failing_since or at) if new.effective is Status.FAIL else None
            self._on_transition(
                Transition(new.name, before, after, at, new.output, first_failure_at=first_failure)
            )

    def _note_recovery_point(self, old: CheckState, new: CheckState) -> None:
        details = new.last_result.details if new.last_result else {}
        backup_at = parse_timestamp(details.get("last_backup_at"))
        if backup_at is None or new.last_result is None:
            return
        previous = old.last_result.details if old.last_result else {}
        if old.last_result is not None and parse_timestamp(previous.get("last_backup_at")) == (
            backup_at
        ):
            return
        size = details.get("size_bytes")
        verified = details.get("verified")
        location = details.get("location")
        assert self._on_recovery_point is not None
        self._on_recovery_point(
            RecoveryPoint(
                source=new.name,
                backup_at=backup_at,
                first_seen_at=new.last_result.time,
                size_bytes=int(size) if isinstance(size, int | float) else None,
                verified=verified if isinstance(verified, bool) else None,
                location=str(location) if location else None,
            )
        )

    def verdict(self) -> Status:
        critical = [
            status for (crit, status), n in self._counts.items() if n > 0 and crit == "critical"
        ]
        degraded_bad = any(
            n > 0 and crit == "degraded" and status is not Status.PASS
            for (crit, status), n in self._counts.items()
        )
        worst = Status.worst(*critical) if critical else Status.PASS
        if degraded_bad:
            worst = Status.worst(worst, Status.WARN)
        return Status.worst(worst, self._self_check.status)

    def _build_snapshot(self, at: datetime) -> Snapshot:
        status = self.verdict()
        ready = self._pending_critical == 0
        if ready and status is not self._verdict_sent:
            before, self._verdict_sent = self._verdict_sent, status
            if self._on_verdict is not None:
                self._on_verdict(
                    VerdictTransition(before.value if before else None, status.value, at)
                )
        return Snapshot(
            checks=MappingProxyType(dict(self._states)),
            status=status,
            ready=ready,
            generated_at=datetime.now(UTC),
            service_id=self._service_id,
            version=self._version,
            self_check=self._self_check,
        )


def advance(state: CheckState, result: Result) -> CheckState:
    """The rise/fall state machine: the next state of one check after one result."""
    runs = dict(state.runs)
    runs[result.status.value] = runs.get(result.status.value, 0) + 1
    failing = result.status is Status.FAIL
    consecutive_fail = state.consecutive_fail + 1 if failing else 0
    consecutive_ok = 0 if failing else state.consecutive_ok + 1
    failing_since = (state.failing_since or result.time) if failing else None
    config = state.config
    status: Status | None
    if state.status is None:
        status = result.status  # the first result after start-up counts as it is
    elif state.status is Status.FAIL:
        status = result.status if consecutive_ok >= config.rise else Status.FAIL
    elif failing:
        status = Status.FAIL if consecutive_fail >= config.fall else state.status
    else:
        status = result.status
    return replace(
        state,
        status=status,
        last_result=result,
        consecutive_ok=consecutive_ok,
        consecutive_fail=consecutive_fail,
        failing_since=failing_since,
        stale=False,
        runs=runs,
    )
