"""Maintenance windows in effect: planned work that neither fails DNS over nor burns the error
budget.

Windows come from the configuration (``maintenance:``, see :mod:`app.history.windows`) and from
``POST /api/maintenance`` or ``drwatch maintenance start`` (ad hoc windows, kept in the state
store so that every replica honours them; each replica re-reads them in the background).

Inside an open window checks keep running and their results and transitions are recorded, but a
check whose effective status is ``fail`` is reported ``warn`` with the output ``in maintenance
window NAME until HH:MM: ...`` (HH:MM in UTC, like every time drwatch writes), so ``/health``
stays 200, unless the window says ``failover: true``. :class:`MaintenanceSchedule` answers which
window covers each check at a moment and when that can next change; the monitor applies it.
:meth:`MaintenanceSchedule.spans` gives the spans of maintenance of one check (or of the service)
between two moments, for the SLO: time inside them is neither good nor bad.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.errors import MaintenanceConflict, UnknownMaintenanceWindow
from app.history.windows import (
    Problems,
    Source,
    Span,
    Window,
    merge_spans,
    resolve_checks,
)
from app.store.repository import MaintenanceRecord, Store
from app.units import NAME_PATTERN, Duration, format_duration, rfc3339

log = logging.getLogger("drwatch.maintenance")

UPCOMING = timedelta(days=7)
"""How far ahead ``GET /api/maintenance`` lists windows."""
KEPT_FOR = timedelta(days=90)
"""How long ended ad hoc windows are kept in memory: the SLO's longest window."""
ADHOC_LONGEST = timedelta(days=7)
"""An ad hoc window that is forgotten must not hide failures for long; longer work belongs in
the configuration, where it is reviewed."""
_LONGEST = format_duration(ADHOC_LONGEST.total_seconds())
REFRESH_INTERVAL = 15.0


class WindowRequest(BaseModel):
    """An ad hoc window as ``POST /api/maintenance`` and ``drwatch maintenance start`` take it:
    open from now, for ``duration`` or until ``end``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    checks: list[str] | None = Field(None, min_length=1)
    # Shorter would end before a replica has read it from the store.
    duration: Duration | None = Field(None, ge=60, description="At least 1 minute.")
    end: AwareDatetime | None = None
    reason: str = Field(min_length=1, max_length=500)
    failover: bool = False


def window_from_record(record: MaintenanceRecord, check_names: Iterable[str]) -> Window:
    """An ad hoc window as the state store keeps it."""
    checks, _ = resolve_checks(record.checks, check_names)
    return Window(
        name=record.name,
        reason=record.reason,
        source="api",
        checks=checks,
        patterns=record.checks,
        failover=record.failover,
        start=record.starts_at,
        end=record.ends_at,
    )


@dataclass(frozen=True)
class OpenWindow:
    """The window a check is in at the moment: the one that decides how it is reported."""

    name: str
    until: datetime
    failover: bool
    source: Source
    reason: str

    def explain(self, output: str) -> str:
        """The output of a failing check in this window (the time in UTC)."""
        until = self.until.astimezone(UTC)
        return f"in maintenance window {self.name} until {until:%H:%M}: {output}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "until": rfc3339(self.until),
            "failover": self.failover,
            "reason": self.reason,
        }


Listener = Callable[[], None]


class MaintenanceSchedule:
    """The configured windows and the ad hoc windows of the state store (as of the last
    refresh), over the configured checks.

    ``checks`` maps each check's name to its criticality: the service is in maintenance while
    a window covers a critical check (those decide whether ``/health`` answers 503). Listeners
    (the monitor) are called whenever the ad hoc windows change, so a window started or ended
    through this replica applies at once.
    """

    def __init__(
        self,
        configured: Iterable[Window] = (),
        checks: Iterable[tuple[str, str]] = (),
        *,
        refresh_interval: float = REFRESH_INTERVAL,
    ) -> None:
        self.configured = tuple(configured)
        self.criticality = dict(checks)
        self.refresh_interval = refresh_interval
        self.adhoc: tuple[Window, ...] = ()
        self.refreshed_at: datetime | None = None
        self._listeners: list[Listener] = []
        self._store_error: str | None = None

    @property
    def windows(self) -> tuple[Window, ...]:
        return self.configured + self.adhoc

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _set_adhoc(self, windows: Iterable[Window]) -> None:
        adhoc = tuple(windows)
        if adhoc == self.adhoc:
            return
        self.adhoc = adhoc
        for listener in self._listeners:
            listener()

    # -- what is open, and when that changes

    def open_by_check(self, at: datetime) -> dict[str, OpenWindow]:
        """The window each check is in at ``at``; checks in none are left out."""
        open_now = [(w, span[1]) for w in self.windows if (span := w.open_at(at)) is not None]
        found: dict[str, OpenWindow] = {}
        if not open_now:
            return found
        for check in self.criticality:
            covering = [(w, until) for w, until in open_now if w.covers(check)]
            if not covering:
                continue
            # The check fails over only when every window on it says failover: true, so the
            # window shown is one that keeps traffic if there is one; the latest ending first.
            window, until = max(covering, key=lambda c: (not c[0].failover, c[1]))
            found[check] = OpenWindow(
                window.name, until, window.failover, window.source, window.reason
            )
        return found

    def next_boundary(self, after: datetime) -> datetime | None:
        """The first moment after ``after`` when some window opens or closes."""
        moments = [m for w in self.windows if (m := w.next_boundary(after)) is not None]
        return min(moments, default=None)

    def spans(self, check: str | None, start: datetime, end: datetime) -> list[Span]:
        """The spans of maintenance within ``[start, end)``, ordered and disjoint.

        For one check: the spans of the windows that cover it. For the service (``check`` is
        None): the spans of the windows that cover at least one critical check, the checks that
        can turn ``/health`` into 503. Ended ad hoc windows are included for ``KEPT_FOR``.
        """
        if check is None:
            critical = [name for name, level in self.criticality.items() if level == "critical"]
            windows = [w for w in self.windows if any(w.covers(name) for name in critical)]
        else:
            windows = [w for w in self.windows if w.covers(check)]
        return merge_spans((s for w in windows for s in w.occurrences(start, end)), start, end)

    def listing(self, now: datetime, horizon: timedelta = UPCOMING) -> list[dict[str, Any]]:
        """Every occurrence open now or opening before ``now + horizon``, by start."""
        entries = []
        for window in self.windows:
            for opens, closes in window.occurrences(now, now + horizon):
                entry = window.describe()
                entry.update(start=rfc3339(opens), end=rfc3339(closes), active=opens <= now)
                entries.append(entry)
        entries.sort(key=lambda e: (e["start"], e["name"]))
        return entries

    def metric_rows(self, now: datetime) -> list[Window]:
        """The windows Prometheus is told about: every configured one, and the ad hoc ones that
        have not ended."""
        return [*self.configured, *(w for w in self.adhoc if w.end is not None and w.end > now)]

    # -- ad hoc windows in the state store

    def problems(self, request: WindowRequest, now: datetime) -> Problems:
        """What is wrong with an ad hoc window request, by field (empty: nothing)."""
        problems: Problems = []
        _, unmatched = resolve_checks(request.checks, self.criticality)
        for index in unmatched:
            assert request.checks is not None
            problems.append(
                (f"checks.{index}", f"{request.checks[index]!r} matches no configured check")
            )
        if (request.duration is None) == (request.end is None):
            problems.append(("duration", "give either duration (e.g. 2h) or end, not both"))
        elif request.duration is not None and request.duration <= 0:
            problems.append(("duration", "must be greater than zero"))
        elif request.end is not None and request.end <= now:
            problems.append(("end", f"must be in the future (now is {rfc3339(now)})"))
        else:
            end = _planned_end(request, now)
            if end - now > ADHOC_LONGEST:
                problems.append(
                    (
                        "end" if request.end is not None else "duration",
                        f"an ad hoc window lasts at most {_LONGEST}; configure longer work "
                        "under maintenance: instead",
                    )
                )
        return problems

    async def start(
        self, store: Store, request: WindowRequest, *, now: datetime | None = None
    ) -> Window:
        """Open an ad hoc window from now. The request must have no :meth:`problems`.

        Raises MaintenanceConflict when a configured window has the name or an ad hoc window of
        that name is open; store errors propagate.
        """
        now = now or datetime.now(UTC)
        if any(w.name == request.name for w in self.configured):
            raise MaintenanceConflict(
                f"A configured maintenance window is called {request.name!r}; choose another name."
            )
        record = MaintenanceRecord(
            name=request.name,
            checks=tuple(request.checks) if request.checks is not None else None,
            starts_at=now,
            ends_at=_planned_end(request, now),
            reason=request.reason,
            failover=request.failover,
            created_by=store.service_id,
        )
        if not await store.start_maintenance(record):
            raise MaintenanceConflict(
                f"The maintenance window {request.name!r} is already open; end it first "
                f"(DELETE /api/maintenance/{request.name} or drwatch maintenance end "
                f"{request.name})."
            )
        window = window_from_record(record, self.criticality)
        self._set_adhoc((*self.adhoc, window))
        return window

    async def end(self, store: Store, name: str, *, now: datetime | None = None) -> Window:
        """End the open ad hoc window ``name`` now.

        Raises UnknownMaintenanceWindow when none of that name is open, MaintenanceConflict for
        a configured window (those end by changing the configuration).
        """
        now = now or datetime.now(UTC)
        ended = await store.end_maintenance(name, now)
        if not ended:
            if any(w.name == name for w in self.configured):
                raise MaintenanceConflict(
                    f"{name!r} is a configured maintenance window; it ends as configured, or "
                    "remove it from the configuration."
                )
            raise UnknownMaintenanceWindow(f"No open ad hoc maintenance window named {name!r}.")
        closed = {(r.name, r.starts_at) for r in ended}
        self._set_adhoc(
            replace(w, end=now) if (w.name, w.start) in closed else w for w in self.adhoc
        )
        return window_from_record(replace(ended[-1], ends_at=now), self.criticality)

    async def refresh(
        self, store: Store, *, now: datetime | None = None, strict: bool = False
    ) -> None:
        """Re-read the ad hoc windows from the store; a store that is down keeps what is known
        (``strict``: its error propagates)."""
        now = now or datetime.now(UTC)
        try:
            records = await store.maintenance_windows(ending_after=now - KEPT_FOR)
        except Exception as exc:
            if strict:
                raise
            error = f"{type(exc).__name__}: {exc}"
            if self._store_error is None:
                log.warning(
                    "cannot read ad hoc maintenance windows from the state store; keeping the "
                    "ones known",
                    extra={"error": error[:300]},
                )
            self._store_error = error
            return
        self._store_error = None
        self.refreshed_at = now
        self._set_adhoc(window_from_record(r, self.criticality) for r in records)

    async def keep_fresh(self, store: Store) -> None:
        """Refresh every ``refresh_interval`` until cancelled."""
        while True:
            await asyncio.sleep(self.refresh_interval)
            await self.refresh(store)


def _planned_end(request: WindowRequest, now: datetime) -> datetime:
    if request.end is not None:
        return request.end.astimezone(UTC)
    assert request.duration is not None
    return now + timedelta(seconds=request.duration)
