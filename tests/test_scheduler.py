"""The scheduler: one job per check, overruns reported and not stacked, lag and liveness."""

from __future__ import annotations

import asyncio

from app.checks.base import Check, Params, Result
from app.config import parse_config
from app.monitor import Monitor
from app.scheduler import Scheduler
from tests.polling import eventually


class _Slow(Check[Params]):
    """Takes `delay` seconds per run and counts how many runs overlap."""

    Params = Params

    def __init__(self, name: str, delay: float) -> None:
        super().__init__(name, Params(), timeout=delay + 1)
        self.delay = delay
        self.running = 0
        self.max_running = 0
        self.runs = 0

    async def run(self) -> Result:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        self.runs += 1
        return self.passed("done")


def _monitor(*names: str, interval: str = "1s") -> Monitor:
    config = parse_config(
        {
            "checks": [
                {
                    "name": name,
                    "type": "postgres",
                    "interval": interval,
                    "params": {"dsn": "postgresql://h/d"},
                }
                for name in names
            ]
        }
    )
    return Monitor(config.checks)


async def test_it_runs_each_check_on_its_interval() -> None:
    """A fast check with a 0.2 s interval runs several times and its results reach the monitor."""
    monitor = _monitor("fast")
    check = _Slow("fast", 0.0)
    scheduler = Scheduler(monitor, [check], {"fast": 0.2}, first_round_spread=0)
    scheduler.start()
    try:
        await eventually(lambda: check.runs >= 3, 10)
    finally:
        await scheduler.stop()
    assert check.runs >= 3
    assert monitor.state("fast").runs["pass"] == check.runs
    stats = scheduler.lag_stats()
    # Every run of the check was submitted (the monitor's tick adds samples of its own), and no
    # start was later than a few intervals of 0.2 s.
    assert stats["samples"] is not None and stats["samples"] >= check.runs
    p50, p99, worst = stats["p50"], stats["p99"], stats["max"]
    assert p50 is not None and p99 is not None and worst is not None
    assert 0 <= p50 <= p99 <= worst < 1.0


async def test_an_overrunning_check_is_reported_not_stacked() -> None:
    """A run longer than the interval skips the next runs (counted) instead of overlapping."""
    monitor = _monitor("slow")
    check = _Slow("slow", 1.0)
    scheduler = Scheduler(monitor, [check], {"slow": 0.2}, first_round_spread=0)
    scheduler.start()
    try:
        await eventually(lambda: scheduler.overruns["slow"] >= 2, 10)
    finally:
        await scheduler.stop()
    assert check.max_running == 1
    assert scheduler.overruns["slow"] >= 2


async def test_a_stopped_job_turns_its_check_stale() -> None:
    """If a check's job stops running, the tick marks the check stale (fail)."""
    monitor = _monitor("stuck", "fine", interval="0.2s")
    stuck, fine = _Slow("stuck", 0.0), _Slow("fine", 0.0)
    scheduler = Scheduler(monitor, [stuck, fine], {"stuck": 0.2, "fine": 0.2}, first_round_spread=0)
    scheduler.start()
    try:
        await eventually(lambda: stuck.runs >= 1 and fine.runs >= 1, 10)
        assert not monitor.state("stuck").stale
        scheduler.unschedule("stuck")
        await eventually(lambda: monitor.state("stuck").stale, 10)
    finally:
        await scheduler.stop()
    assert monitor.state("stuck").stale
    assert monitor.snapshot.status.value == "fail"
    assert not monitor.state("fine").stale
