"""The probe engine: which due check runs start, in what order, and which are skipped.

A drwatch that is merely busy must never report its dependencies down: that would turn
``/health`` into 503 and fail a region over for nothing. So drwatch's own queueing is kept apart
from the dependencies' latency:

* At most ``max_in_flight`` check runs are in flight. A due run waits for a run slot; the wait
  is drwatch's own time, so the check's timeout starts only when the run gets its slot
  (:func:`app.runner.run_check` is called then). Time a started run spends waiting for another
  of drwatch's own resources (the HTTP engine's bound on requests in flight) is not charged
  either (:func:`app.runner.uncharged`).
* Waiting runs start critical first, then degraded, then info; within one criticality the run
  that fell due first starts first. The verdict that drives failover is the last to lose
  freshness.
* A run that cannot start within its interval is skipped: by then the next run of the check is
  due. A run is also skipped when the check's previous run is still waiting or running (the
  scheduler does not stack runs). A skipped run changes nothing: the check keeps its last state
  and turns stale after 3 intervals, as with any missing result. Skips are counted per check
  (``drwatch_check_overruns_total``) and logged at most once per check per minute.
* The number of run slots adapts to the event loop: a run's timeout cannot tell the time its
  own answer waited for a busy event loop from the dependency's latency, so when the loop falls
  behind (a timer fires more than ``LOOP_LAG_TARGET`` late) fewer runs are admitted, and more
  again once it keeps up, never more than ``max_in_flight``. The time the loop ran behind is
  not charged to the runs in flight either (:func:`app.runner.note_loop_behind`). Runs waiting
  on slow dependencies cost no CPU and keep the loop on time, so they do not shrink the limit.
  Past the CPU the engine can use, runs wait (uncharged) instead of timing out in a crowded
  loop.
* Saturation is measured: runs due / runs started over the last minute
  (``drwatch_engine_saturation_ratio``; 1.0 when the engine keeps up). A run skipped because the
  check's own previous run is still *running* is left out of both counts: that is a slow
  dependency, not a busy drwatch. While a run was skipped for want of a run slot in the last
  minute, the engine is *saturated* and the built-in self-check ``drwatch`` warns.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.checks.base import Check, Result
from app.runner import note_loop_behind, run_check

log = logging.getLogger("drwatch.engine")

# Check runs in flight across the process. High enough that it never throttles a normal
# configuration, low enough to keep the sockets far below the default open-files limit (1024)
# and the event loop responsive enough for /health when thousands of checks fall due together.
MAX_IN_FLIGHT = 512
# The order in which waiting runs start.
RANKS = {"critical": 0, "degraded": 1, "info": 2}
# How often the event loop's lag is sampled, the lag the slot limit steers to, and the fewest
# slots it goes down to (enough to keep a core busy with runs against fast dependencies).
LOOP_SAMPLE_PERIOD = 0.05
LOOP_LAG_TARGET = 0.025
MIN_SLOTS = 16
SATURATION_WINDOW = 60
# A skipped run is logged at most this often per check.
SKIP_LOG_INTERVAL = 60.0


class RateWindow:
    """Events per second over the last ``seconds`` seconds, in constant memory."""

    def __init__(
        self, seconds: int = SATURATION_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seconds = seconds
        self._clock = clock
        self._counts = [0] * seconds
        self._stamps = [-1] * seconds

    def add(self, n: int = 1) -> None:
        second = int(self._clock())
        slot = second % self._seconds
        if self._stamps[slot] != second:
            self._stamps[slot], self._counts[slot] = second, 0
        self._counts[slot] += n

    def total(self) -> int:
        oldest = int(self._clock()) - self._seconds
        return sum(c for c, s in zip(self._counts, self._stamps, strict=True) if s > oldest)


@dataclass(order=True)
class _Waiter:
    rank: int
    due_at: float
    seq: int
    check: Check[Any] = field(compare=False)
    interval: float = field(compare=False)
    on_result: Callable[[Result], None] = field(compare=False)


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """What the engine can say about its own load; read by the self-check and the metrics."""

    saturated: bool
    saturation_ratio: float
    runs_in_flight: int
    runs_waiting: int
    slots: int  # run slots in use now, adapted to the event loop's lag
    # Runs skipped over the last minute because they (or the check's previous run) were still
    # waiting for a run slot.
    skipped_for_slots: int


SATURATED_OUTPUT = (
    "drwatch is saturated: check runs fall due faster than it can start them, so some are "
    "skipped and their results go stale (critical checks are started first). Configure fewer "
    "checks or longer intervals, raise DRWATCH_MAX_IN_FLIGHT if CPU is idle, or spread the "
    "checks over more replicas."
)


class Engine:
    """Admits due check runs to a bounded number of run slots; see the module docstring."""

    def __init__(
        self, max_in_flight: int = MAX_IN_FLIGHT, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._running = 0
        self._waiting: list[_Waiter] = []
        self._seq = itertools.count()
        # Checks with a run waiting (False) or running (True); at most one run per check.
        self._busy: dict[str, bool] = {}
        self.skipped: Counter[str] = Counter()
        self._skip_logged_at: dict[str, float] = {}
        self._due = RateWindow(clock=clock)
        self._started = RateWindow(clock=clock)
        self._skipped_for_slots = RateWindow(clock=clock)
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        # The slots in use now: adapted to the event loop's lag, at most max_in_flight.
        self.slots = max_in_flight
        self._watcher: asyncio.Task[None] | None = None

    def submit(
        self,
        check: Check[Any],
        *,
        criticality: str = "info",
        interval: float,
        on_result: Callable[[Result], None],
    ) -> None:
        """A run of ``check`` is due: start it when a slot is free and hand its Result to
        ``on_result``, or skip it (the previous run is still waiting or running, or no slot
        comes free within ``interval``). A waiting run is a heap entry, not a task, so a backlog
        of thousands costs little.
        """
        name = check.name
        if self._closed:
            return
        if name in self._busy:
            self.skip(name, running=self._busy[name])
            return
        self._due.add()
        self._busy[name] = False
        rank = RANKS.get(criticality, len(RANKS))
        waiter = _Waiter(rank, self._clock(), next(self._seq), check, interval, on_result)
        heapq.heappush(self._waiting, waiter)
        self._admit()

    async def _execute(self, waiter: _Waiter) -> None:
        name = waiter.check.name
        try:
            result = await run_check(waiter.check)
            waiter.on_result(result)
        finally:
            self._busy.pop(name, None)
            self._running -= 1
            self._admit()

    def skip(self, name: str, *, running: bool | None = None, reason: str = "") -> None:
        """Record a due run of ``name`` that does not start.

        ``running``: the check's own previous run is still running (a slow dependency, left out
        of the saturation ratio); otherwise the run counts as due and not started. By default,
        whatever the engine knows of the previous run (a run it never saw counts as running).
        """
        if running is None:
            running = self._busy.get(name, True)
        self.skipped[name] += 1
        if not running:
            self._due.add()
            self._skipped_for_slots.add()
        why = reason or (
            "the previous run is still going"
            if running
            else "the previous run is still waiting for a run slot (drwatch is saturated)"
        )
        self._log_skip(name, why)

    def _skip_for_slot(self, name: str, interval: float) -> None:
        self.skipped[name] += 1
        self._skipped_for_slots.add()
        self._log_skip(
            name,
            f"no run slot came free within its interval ({interval:g} s); drwatch is saturated",
        )

    def _log_skip(self, name: str, why: str) -> None:
        now = self._clock()
        if now - self._skip_logged_at.get(name, -SKIP_LOG_INTERVAL) >= SKIP_LOG_INTERVAL:
            self._skip_logged_at[name] = now
            log.warning(
                f"check run skipped: {why}",
                extra={"check": name, "overruns": self.skipped[name]},
            )

    def _admit(self) -> None:
        """Start the most urgent waiting runs that can still start in time, while slots last."""
        now = self._clock()
        while self._waiting and self._running < self.slots:
            waiter = heapq.heappop(self._waiting)
            name = waiter.check.name
            if now - waiter.due_at > waiter.interval:
                del self._busy[name]  # the next run of that check is due already
                self._skip_for_slot(name, waiter.interval)
                continue
            self._running += 1
            self._busy[name] = True
            self._started.add()
            task = asyncio.get_running_loop().create_task(self._execute(waiter))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        """Start adapting the slots to the event loop's lag (call with the loop running)."""
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_loop_lag())

    async def _watch_loop_lag(self) -> None:
        loop = asyncio.get_running_loop()
        floor = min(MIN_SLOTS, self.max_in_flight)
        while True:
            before = loop.time()
            await asyncio.sleep(LOOP_SAMPLE_PERIOD)
            lag = loop.time() - before - LOOP_SAMPLE_PERIOD
            if lag > 0:
                note_loop_behind(lag)
            if lag > LOOP_LAG_TARGET:
                self.slots = max(floor, int(self.slots * 0.8))
            elif lag < LOOP_LAG_TARGET / 2 and self.slots < self.max_in_flight:
                self.slots = min(self.max_in_flight, self.slots + max(1, self.slots // 10))
                self._admit()

    async def close(self) -> None:
        """Drop waiting runs and cancel running ones (shut-down); later runs are not started."""
        self._closed = True
        self.slots = 0
        self._waiting = []
        tasks = [*self._tasks, *([self._watcher] if self._watcher else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def load(self) -> EngineLoad:
        due, started = self._due.total(), self._started.total()
        skipped_for_slots = self._skipped_for_slots.total()
        ratio = due / started if started else (float(due) if due else 1.0)
        return EngineLoad(
            saturated=skipped_for_slots > 0,
            saturation_ratio=ratio,
            runs_in_flight=self._running,
            runs_waiting=len(self._waiting),
            slots=self.slots,
            skipped_for_slots=skipped_for_slots,
        )
