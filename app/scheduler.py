"""APScheduler wiring: one job per check, plus the monitor's tick that is also our liveness beat.

Each check job runs with ``max_instances=1`` and ``coalesce=True``: a run that overruns its
interval makes the next one be skipped and reported (log line and
``drwatch_check_overruns_total``), never stacked. The scheduler's own health is measured: every
job submission records how late it started against its scheduled time (``lag``), and a tick job
every second refreshes staleness and ``last_tick``; ``/health/live`` fails when ticks stop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from app.checks.base import Check
from app.lag_window import LagWindow
from app.monitor import Monitor
from app.runner import run_check

log = logging.getLogger("drwatch.scheduler")

TICK_INTERVAL = 1.0
# /health/live fails when the tick job has not run for this long.
LIVENESS_LIMIT = 10.0
_TICK_JOB = "__drwatch_tick__"


class Scheduler:
    """Runs checks on their intervals and feeds their results to the monitor."""

    def __init__(
        self,
        monitor: Monitor,
        checks: Iterable[Check[Any]],
        intervals: dict[str, float],
        *,
        first_round_spread: float | None = None,
    ) -> None:
        self.monitor = monitor
        self.checks = {c.name: c for c in checks}
        self.intervals = intervals
        # Spread the first round over up to a second (1 ms per check), so 5,000 checks do not
        # start in one burst while 20 checks still all report within milliseconds of start-up.
        self.first_round_spread = (
            min(1.0, 0.001 * len(self.checks)) if first_round_spread is None else first_round_spread
        )
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.last_tick = time.monotonic()
        self.overruns: Counter[str] = Counter()
        self.missed: Counter[str] = Counter()
        self.lags = LagWindow()
        self.extra_jobs: list[Callable[[AsyncIOScheduler], None]] = []
        self.liveness_limit = LIVENESS_LIMIT

    # -- lifecycle

    def start(self) -> None:
        now = datetime.now(UTC)
        for name, check in self.checks.items():
            interval = self.intervals[name]
            # Jitter every run after the first by up to 10 % of the interval (at most 5 s).
            first = now + timedelta(seconds=random.uniform(0, self.first_round_spread))  # noqa: S311
            self.scheduler.add_job(
                self._run,
                IntervalTrigger(seconds=interval, jitter=min(interval * 0.1, 5.0), timezone=UTC),
                args=[check],
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval)),
                next_run_time=first,
            )
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
        self.scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self.scheduler.start()
        self.last_tick = time.monotonic()

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await asyncio.gather(*(c.close() for c in self.checks.values()), return_exceptions=True)

    # -- jobs

    async def _run(self, check: Check[Any]) -> None:
        result = await run_check(check)
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
        self.monitor.tick()

    async def run_now(self, name: str) -> None:
        """Run one check immediately, outside its schedule (used by tests and the CLI)."""
        await self._run(self.checks[name])

    # -- observations

    def _on_submitted(self, event: JobSubmissionEvent) -> None:
        if not event.scheduled_run_times:
            return
        lag = (datetime.now(UTC) - event.scheduled_run_times[-1]).total_seconds()
        self.lags.record(lag)

    def _on_skipped(self, event: JobEvent) -> None:
        if event.job_id == _TICK_JOB:
            return
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.overruns[event.job_id] += 1
            log.warning(
                "check run skipped: the previous run is still going",
                extra={"check": event.job_id, "overruns": self.overruns[event.job_id]},
            )
        else:
            self.missed[event.job_id] += 1
            log.warning("check run missed its schedule", extra={"check": event.job_id})

    @property
    def alive(self) -> bool:
        return self.scheduler.running and time.monotonic() - self.last_tick < self.liveness_limit

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
