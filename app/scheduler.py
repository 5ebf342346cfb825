"""APScheduler wiring: one job per check, plus the monitor's tick that is also our liveness beat.

Each check job hands its run to the probe engine (:mod:`app.engine`), which starts it when a run
slot is free, critical checks first, and skips a run that cannot start within its interval. Jobs
run with ``max_instances=1`` and ``coalesce=True``: a run falling due while the previous one is
still waiting or running is skipped and reported (log line at most once per check per minute and
``drwatch_check_overruns_total``), never stacked. The tick reports the engine's saturation to the
monitor as the built-in check ``drwatch``. The scheduler's own health is measured: every
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

from app.checks.base import Check, Result, Status
from app.engine import SATURATED_OUTPUT, Engine
from app.monitor import Monitor, SelfCheck
from app.runner import run_check

log = logging.getLogger("drwatch.scheduler")

TICK_INTERVAL = 1.0
# /health/live fails when the tick job has not run for this long.
LIVENESS_LIMIT = 10.0
_LAG_WINDOW = 60.0
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
        self._lags: deque[tuple[float, float]] = deque(maxlen=200_000)
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
        self.engine.start()
        self.last_tick = time.monotonic()

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.engine.close()
        await asyncio.gather(*(c.close() for c in self.checks.values()), return_exceptions=True)

    # -- jobs

    async def _run(self, check: Check[Any]) -> None:
        result = await self.engine.run(
            check, criticality=self._criticality(check.name), interval=self.intervals[check.name]
        )
        if result is None:
            return  # skipped: the check keeps its last state until it turns stale
        self._record(check, result)

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
        lag = (datetime.now(UTC) - event.scheduled_run_times[-1]).total_seconds()
        self._lags.append((time.monotonic(), max(lag, 0.0)))

    def _on_skipped(self, event: JobEvent) -> None:
        if event.job_id == _TICK_JOB:
            return
        if event.job_id not in self.checks:
            return  # a drill or another singleton job
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.engine.skip(event.job_id)
        else:
            # The event loop was too busy to fire the job within its grace time: drwatch's own
            # saturation, so it counts as a skipped run like one that found no run slot.
            self.missed[event.job_id] += 1
            self.engine.skip(
                event.job_id,
                running=False,
                reason="the scheduler started it too late (the event loop is overloaded)",
            )

    @property
    def overruns(self) -> Counter[str]:
        """Skipped runs per check since start-up."""
        return self.engine.skipped

    @property
    def alive(self) -> bool:
        return self.scheduler.running and time.monotonic() - self.last_tick < self.liveness_limit

    def lag_stats(self) -> dict[str, float | None]:
        """Start delays of job runs over the last minute: p50, p99, max (seconds)."""
        cutoff = time.monotonic() - _LAG_WINDOW
        lags = sorted(lag for at, lag in self._lags if at >= cutoff)
        if not lags:
            return {"p50": None, "p99": None, "max": None, "samples": 0}
        return {
            "p50": lags[len(lags) // 2],
            "p99": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
            "max": lags[-1],
            "samples": len(lags),
        }


def add_cron_job(
    scheduler: AsyncIOScheduler, job_id: str, crontab: str, func: Callable[[], Awaitable[None]]
) -> None:
    """A cron-scheduled singleton job (restore drills)."""
    from apscheduler.triggers.cron import CronTrigger

    scheduler.add_job(
        func,
        CronTrigger.from_crontab(crontab, timezone=UTC),
        id=job_id,
        name=job_id,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
    )
