"""Runs every check on its interval, plus the monitor's tick that is also our liveness beat.

Checks are not APScheduler jobs: at thousands of runs per second APScheduler's per-run work
(trigger arithmetic, job store updates, events, a task per firing) used more CPU than the probes
themselves, and a drwatch past its capacity spent it on runs it then had to skip. One loop keeps
a heap of due times instead; each due run goes to the probe engine (:mod:`app.engine`), which
starts it when a run slot is free, critical checks first, and skips a run that cannot start
within its interval. A run falling due while the previous one is still waiting or running is
skipped and reported (log line at most once per check per minute and
``drwatch_check_overruns_total``), never stacked. Every run after the first is jittered by up to
10 % of the interval (at most 5 s) around a fixed grid, as APScheduler's interval trigger did.
APScheduler runs the monitor's tick and the cron jobs (drills); pausing it pauses the checks too.
The tick reports the engine's saturation to the monitor as the built-in check ``drwatch``.

The scheduler's own health is measured: every run handed to the engine (and every APScheduler job
submission) records how late it started against its scheduled time (``lag``), and a tick job
every second refreshes staleness and ``last_tick``; ``/health/live`` fails when ticks stop.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_PAUSED
from apscheduler.triggers.interval import IntervalTrigger

from app.checks.base import Check, Result, Status
from app.engine import SATURATED_OUTPUT, Engine
from app.lag_window import LagWindow
from app.monitor import Monitor, SelfCheck
from app.runner import run_check

log = logging.getLogger("drwatch.scheduler")

TICK_INTERVAL = 1.0
# /health/live fails when the tick job has not run for this long.
LIVENESS_LIMIT = 10.0
_TICK_JOB = "__drwatch_tick__"
# Due runs handed to the engine between two yields to the event loop.
_BATCH = 500


class Scheduler:
    """Runs checks on their intervals and feeds their results to the monitor."""

    def __init__(
        self,
        monitor: Monitor,
        checks: Iterable[Check[Any]],
        intervals: dict[str, float],
        *,
        first_round_spread: float | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.monitor = monitor
        self.checks = {c.name: c for c in checks}
        self.intervals = intervals
        self.engine = engine or Engine()
        # Spread the first round over up to a second (1 ms per check), so 5,000 checks do not
        # start in one burst while 20 checks still all report within milliseconds of start-up.
        self.first_round_spread = (
            min(1.0, 0.001 * len(self.checks)) if first_round_spread is None else first_round_spread
        )
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.last_tick = time.monotonic()
        self.missed: Counter[str] = Counter()
        self.lags = LagWindow()
        self.extra_jobs: list[Callable[[AsyncIOScheduler], None]] = []
        self.liveness_limit = LIVENESS_LIMIT
        # (fire at, tie-break, check name, its slot on the grid), monotonic seconds.
        self._due: list[tuple[float, int, str, float]] = []
        self._seq = itertools.count()
        self._unscheduled: set[str] = set()
        self._loop: asyncio.Task[None] | None = None

    # -- lifecycle

    def start(self) -> None:
        now = datetime.now(UTC)
        started = time.monotonic()
        for name in self.checks:
            first = started + random.uniform(0, self.first_round_spread)  # noqa: S311
            heapq.heappush(self._due, (first, next(self._seq), name, first))
        self.scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=TICK_INTERVAL, timezone=UTC),
            id=_TICK_JOB,
            name="monitor tick",
            max_instances=1,
            coalesce=True,
            next_run_time=now,
        )
        for add in self.extra_jobs:
            add(self.scheduler)
        self.scheduler.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        self.scheduler.start()
        self.engine.start()
        self._loop = asyncio.get_running_loop().create_task(self._run_due_checks())
        self.last_tick = time.monotonic()

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        await self.engine.close()
        await asyncio.gather(*(c.close() for c in self.checks.values()), return_exceptions=True)

    # -- jobs

    async def _run_due_checks(self) -> None:
        """Hand every due run to the engine and put the check's next run on the heap."""
        due = self._due
        while due:
            delay = due[0][0] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if self.scheduler.state == STATE_PAUSED:
                await asyncio.sleep(TICK_INTERVAL / 10)
                continue
            now = time.monotonic()
            for _ in range(_BATCH):
                if not due or due[0][0] > now:
                    break
                fire_at, _, name, slot = heapq.heappop(due)
                if name in self._unscheduled:
                    continue
                interval = self.intervals[name]
                late = now - fire_at
                if late > interval:
                    # The loop itself fell a whole interval behind: drwatch's own saturation,
                    # counted like a run that found no run slot.
                    self.missed[name] += 1
                    self.engine.skip(
                        name, running=False, reason="the scheduler reached it too late"
                    )
                else:
                    self._record_lag(late)
                    check = self.checks[name]
                    self.engine.submit(
                        check,
                        criticality=self._criticality(name),
                        interval=interval,
                        on_result=functools.partial(self._record, check),
                    )
                # The next slot on the grid that is still ahead (runs missed meanwhile are not
                # made up for), with jitter so checks of one interval do not stay in lockstep.
                slot += interval * max(1, int((now - slot) // interval) + 1)
                jitter = random.uniform(0, min(interval * 0.1, 5.0))  # noqa: S311
                heapq.heappush(due, (slot + jitter, next(self._seq), name, slot))
            await asyncio.sleep(0)

    def unschedule(self, name: str) -> None:
        """Stop running check ``name`` (it turns stale after 3 intervals)."""
        self._unscheduled.add(name)

    def _criticality(self, name: str) -> str:
        try:
            return self.monitor.state(name).config.criticality
        except KeyError:
            return "info"

    def _record(self, check: Check[Any], result: Result) -> None:
        self.monitor.record(check.name, result)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "check ran",
                extra={
                    "check": check.name,
                    "status": result.status.value,
                    "duration": round(result.duration, 4),
                    "output": result.output,
                },
            )

    async def _tick(self) -> None:
        self.last_tick = time.monotonic()
        saturated = self.engine.load().saturated
        self.monitor.report_self(
            SelfCheck(Status.WARN, SATURATED_OUTPUT) if saturated else SelfCheck()
        )
        self.monitor.tick()

    async def run_now(self, name: str) -> None:
        """Run one check immediately, outside its schedule and the engine's queue (used by
        tests and the CLI)."""
        check = self.checks[name]
        self._record(check, await run_check(check))

    # -- observations

    def _on_submitted(self, event: JobSubmissionEvent) -> None:
        if not event.scheduled_run_times:
            return
        self._record_lag((datetime.now(UTC) - event.scheduled_run_times[-1]).total_seconds())

    def _record_lag(self, lag: float) -> None:
        self.lags.record(lag)

    @property
    def overruns(self) -> Counter[str]:
        """Skipped runs per check since start-up."""
        return self.engine.skipped

    @property
    def alive(self) -> bool:
        checks_loop_ok = self._loop is None or not self._loop.done()
        return (
            self.scheduler.running
            and checks_loop_ok
            and time.monotonic() - self.last_tick < self.liveness_limit
        )

    def lag_stats(self) -> dict[str, float | None]:
        """Start delays of job runs over the last minute: p50, p99, max (seconds)."""
        return self.lags.stats()


def add_cron_job(
    scheduler: AsyncIOScheduler,
    job_id: str,
    crontab: str,
    func: Callable[[datetime], Awaitable[None]],
) -> None:
    """A cron-scheduled singleton job (restore drills). ``func`` gets the slot it runs for: the
    scheduled fire time, not the time it started, so replicas that run late (a paused process,
    a busy loop) still name the same slot and can claim it exactly once.
    """
    from apscheduler.triggers.cron import CronTrigger

    slots: deque[datetime] = deque()

    def note_slot(event: JobSubmissionEvent) -> None:
        # Submission events fire in the scheduler's loop before the job's coroutine starts.
        if event.job_id == job_id and event.scheduled_run_times:
            slots.append(event.scheduled_run_times[-1])

    async def run() -> None:
        # Cron fires on whole minutes: without a submission event (the job called directly),
        # the current minute is the slot.
        slot = slots.popleft() if slots else datetime.now(UTC).replace(second=0, microsecond=0)
        await func(slot)

    scheduler.add_listener(note_slot, EVENT_JOB_SUBMITTED)
    scheduler.add_job(
        run,
        CronTrigger.from_crontab(crontab, timezone=UTC),
        id=job_id,
        name=job_id,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
    )
