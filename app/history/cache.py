"""One cache of every answer about the past, refreshed from the state store in the background.

Every replica reads the shared store every ``interval`` seconds (15 by default, so answers are
at most about 15 s plus one read behind) and swaps in a new :class:`HistoryAnswers`; routes and
the metrics collector only read memory. While the store is down the last answers stay, marked
``stale`` with the time they were read. What one refresh reads: the transitions, verdict changes
and coverage of the longest SLO window, the newest recovery point per backup source, and the
newest and newest passing run of every drill (handed to the DrillService).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app import redact
from app.history.incidents import (
    Incident,
    check_incidents,
    mark_failover,
    rfc3339,
    service_incidents,
)
from app.history.slo import LONGEST_WINDOW, SloSpec, slo_answer
from app.history.timeline import Segment, merged_timeline, replica_timeline
from app.store.repository import CoverageSpan, HistoryRows, RecoveryPoint, Store

if TYPE_CHECKING:
    from app.drills.service import DrillService

log = logging.getLogger("drwatch.history")

REFRESH_INTERVAL = 15.0
SCOPES = ("self", "all")


@dataclass(frozen=True)
class HistoryView:
    """The answers for one scope: this replica (``self``) or every replica at once (``all``)."""

    incidents: tuple[Incident, ...] = ()  # newest first
    slo: Mapping[str, Any] = field(default_factory=dict)

    @property
    def open_incidents(self) -> int:
        return sum(1 for incident in self.incidents if incident.resolved_at is None)


@dataclass(frozen=True)
class HistoryAnswers:
    read_at: float | None = None  # when the store was last read; None: never yet
    views: Mapping[str, HistoryView] = field(default_factory=dict)
    recovery_points: Mapping[str, RecoveryPoint] = field(default_factory=dict)


MaintenanceSpans = Callable[[str | None, float, float], list[tuple[float, float]]]
"""Spans of maintenance of a check (None: the service) within [start, end), as Unix times."""


def compute(
    rows: HistoryRows,
    service_id: str,
    spec: SloSpec,
    criticality: Callable[[str], str | None],
    now: float,
    maintenance: MaintenanceSpans | None = None,
) -> dict[str, HistoryView]:
    """The incident lists and SLO answers of both scopes from one read of the store."""
    start = now - LONGEST_WINDOW
    service_spans = maintenance(None, start, now) if maintenance else []
    spans: dict[str, list[CoverageSpan]] = defaultdict(list)
    for span in rows.coverage:
        spans[span.service_id].append(span)
    verdicts: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for sid, _from, to_status, at in rows.verdict_transitions:
        verdicts[sid].append((at.timestamp(), to_status))
    replicas = sorted(set(spans) | {service_id})
    timelines: dict[str, list[Segment]] = {
        sid: replica_timeline(spans.get(sid, ()), verdicts.get(sid, ()), now) for sid in replicas
    }
    checks = check_incidents(rows.check_transitions, spans, criticality, now)
    by_replica: dict[str, list[Incident]] = defaultdict(list)
    for incident in checks:
        by_replica[incident.service_id].append(incident)
    for sid, incidents in by_replica.items():
        mark_failover(incidents, timelines.get(sid, ()), now)
    if maintenance is not None:
        by_check: dict[str, list[tuple[float, float]]] = {}
        for incident in checks:
            name = incident.check
            if name is None:
                continue
            if name not in by_check:
                by_check[name] = maintenance(name, start, now)
            incident.in_maintenance = _inside(incident.started_at, by_check[name])

    def view(sid: str, timeline: Sequence[Segment], candidates: list[Incident]) -> HistoryView:
        services = service_incidents(sid, timeline, candidates, now)
        for incident in services:
            incident.in_maintenance = _inside(incident.started_at, service_spans)
        listed = sorted([*services, *candidates], key=lambda i: i.detected_at, reverse=True)
        answer = slo_answer(timeline, services, spec, now, service_spans)
        return HistoryView(tuple(listed), answer)

    merged = merged_timeline([timelines[sid] for sid in replicas])
    return {
        "self": view(service_id, timelines[service_id], by_replica.get(service_id, [])),
        "all": view("*", merged, checks),
    }


def _inside(moment: float, spans: Sequence[tuple[float, float]]) -> bool:
    return any(opened <= moment < closed for opened, closed in spans)


class HistoryCache:
    """Reads the store in the background and keeps the answers every route serves."""

    def __init__(
        self,
        store: Store,
        spec: SloSpec,
        *,
        criticality: Callable[[str], str | None],
        drills: DrillService | None = None,
        interval: float = REFRESH_INTERVAL,
        maintenance: MaintenanceSpans | None = None,
    ) -> None:
        self.store = store
        self.maintenance = maintenance
        self.spec = spec
        self.criticality = criticality
        self.drills = drills
        self.interval = interval
        self.answers = HistoryAnswers()
        self.stale = True  # nothing read yet
        self.last_error: str | None = None
        self.refresh_seconds = 0.0  # CPU time of the last refresh, for the benchmark
        self._slo_json: dict[str, bytes] = {}  # per scope, rendered when the answers change
        self._task: asyncio.Task[None] | None = None

    @property
    def service_id(self) -> str:
        return self.store.service_id

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="drwatch-history-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                # A bug in computing the answers must not end the refreshes for good.
                log.exception("history refresh failed; the last answers stay")
                self.stale = True
            await asyncio.sleep(self.interval)

    async def refresh(self, now: float | None = None) -> bool:
        """Read the store once and swap in new answers; False (answers kept, marked stale) when
        the store could not be read. ``now`` fixes the end of every window (tests, reports).
        """
        now = time.time() if now is None else now
        try:
            rows = await self.store.history(datetime.fromtimestamp(now - LONGEST_WINDOW, UTC))
            points = await self.store.newest_recovery_points()
            drill_runs = await self._drill_runs()
        except Exception as exc:
            error = redact.scrub(f"{type(exc).__name__}: {exc}")[:300]
            if not self.stale:
                log.error(
                    "cannot read history from the state store; serving the last answers",
                    extra={"error": error},
                )
            self.stale, self.last_error = True, error
            self._slo_json.clear()
            return False
        cpu = time.process_time()
        # In a thread: the computation takes tens of milliseconds over 90 days of history, and
        # the event loop must keep answering /health meanwhile (the GIL is handed over every
        # few milliseconds, where a coroutine would hold the loop for the whole computation).
        views = await asyncio.to_thread(
            compute, rows, self.service_id, self.spec, self.criticality, now, self.maintenance
        )
        self.refresh_seconds = time.process_time() - cpu
        self.answers = HistoryAnswers(read_at=now, views=views, recovery_points=points)
        if self.drills is not None:
            for name, (last, success) in drill_runs.items():
                self.drills.apply_history(name, last, success)
        if self.stale and self.last_error is not None:
            log.warning("history reads from the state store recovered")
        self.stale, self.last_error = False, None
        self._slo_json.clear()
        return True

    async def _drill_runs(self) -> dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]]:
        runs = {}
        for name in self.drills.specs if self.drills is not None else ():
            last = await self.store.last_drill_run(name)
            success = await self.store.last_successful_drill_run(name)
            runs[name] = (last, success)
        return runs

    # -- answers (memory only)

    def view(self, scope: str) -> HistoryView:
        return self.answers.views.get(scope) or HistoryView(
            slo=slo_answer((), (), self.spec, time.time())
        )

    def freshness(self) -> dict[str, Any]:
        read_at = self.answers.read_at
        return {
            "stale": self.stale,
            "read_at": None if read_at is None else rfc3339(read_at),
        }

    def slo(self, scope: str) -> dict[str, Any]:
        return {
            "service_id": self.service_id if scope == "self" else "*",
            "scope": scope,
            **self.freshness(),
            **self.view(scope).slo,
        }

    def slo_json(self, scope: str) -> bytes:
        """``slo(scope)`` as JSON, rendered once per refresh."""
        rendered = self._slo_json.get(scope)
        if rendered is None:
            rendered = json.dumps(self.slo(scope), separators=(",", ":")).encode()
            self._slo_json[scope] = rendered
        return rendered

    def metric_values(self) -> dict[str, Any]:
        """This replica's figures for /metrics."""
        view = self.answers.views.get("self")
        windows = view.slo.get("windows", {}) if view else {}
        return {
            "availability": {w: f.get("availability") for w, f in windows.items()},
            "budget_remaining": {
                w: f.get("error_budget_remaining_ratio") for w, f in windows.items()
            },
            "incidents_open": view.open_incidents if view else None,
            "recovery_points": {
                source: point.backup_at.timestamp()
                for source, point in self.answers.recovery_points.items()
            },
        }
