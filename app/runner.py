"""run_check(): the one place that owns a probe's timeout, timing and failure handling.

A check's timeout measures the dependency, not drwatch: time a run spends waiting for one of
drwatch's own resources (a slot of the HTTP engine's bound on requests in flight) is spent
inside :func:`uncharged` and moves the run's deadline by as much, and so does the time the event
loop ran behind (too busy to read any answer: :func:`note_loop_behind`, and the deadline's own
timer firing late). Waiting for a run slot happens
before ``run_check`` is called at all (:mod:`app.engine`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from app import redact
from app.checks.base import Check, CheckFailed, Result, Status
from app.units import format_duration

log = logging.getLogger("drwatch.runner")

# How long a cancelled check may take to unwind before we stop waiting for it. The Result is
# returned at the timeout regardless; this only bounds how long the task may linger.
_CANCEL_GRACE = 1.0


# Seconds the event loop has run behind its timers since start-up, as measured by the probe
# engine (app/engine.py): time in which no answer could have been read, whatever the dependency.
_loop_behind_total = 0.0


def note_loop_behind(seconds: float) -> None:
    """Record that the event loop ran ``seconds`` behind its timers (not charged to any run)."""
    global _loop_behind_total
    _loop_behind_total += seconds


class _RunClock:
    """The time charged to one run: wall time minus the time spent in :func:`uncharged` and the
    time the event loop ran behind."""

    __slots__ = ("loop_behind_at_start", "started", "uncharged_total", "waiting_since", "waits")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.loop_behind_at_start = _loop_behind_total
        self.uncharged_total = 0.0
        self.waits = 0  # uncharged waits in progress (a check may wait on several at once)
        self.waiting_since = 0.0

    def charged(self) -> float:
        now = time.perf_counter()
        waiting = now - self.waiting_since if self.waits else 0.0
        loop_behind = _loop_behind_total - self.loop_behind_at_start
        return now - self.started - self.uncharged_total - waiting - loop_behind


_run_clock: contextvars.ContextVar[_RunClock | None] = contextvars.ContextVar(
    "drwatch_run_clock", default=None
)


@asynccontextmanager
async def uncharged() -> AsyncIterator[None]:
    """Wait for one of drwatch's own resources without charging the wait to the check's timeout.

    Outside a run (a check used on its own) it does nothing.
    """
    clock = _run_clock.get()
    if clock is None:
        yield
        return
    if clock.waits == 0:
        clock.waiting_since = time.perf_counter()
    clock.waits += 1
    try:
        yield
    finally:
        clock.waits -= 1
        if clock.waits == 0:
            clock.uncharged_total += time.perf_counter() - clock.waiting_since


async def run_check(check: Check[Any], timeout: float | None = None) -> Result:
    """Run ``check`` once and return its Result. Never raises (except on cancellation of the
    caller), and returns no later than ``timeout`` seconds after it was called plus the time
    the check spent waiting in :func:`uncharged`, even when the check ignores cancellation.
    ``Result.duration`` is the charged time.
    """
    limit = check.timeout if timeout is None else timeout
    started_at = datetime.now(UTC)
    clock = _RunClock()
    # The check's task inherits the clock through its context; the caller's context is left as
    # it was.
    token = _run_clock.set(clock)
    try:
        task = asyncio.ensure_future(check.run())
    finally:
        _run_clock.reset(token)
    try:
        done = await _wait_charged(task, clock, limit)
    except asyncio.CancelledError:
        task.cancel()
        raise
    duration = clock.charged()
    if not done:
        task.cancel()
        task.add_done_callback(_discard_outcome)
        result = Result(
            Status.FAIL,
            f"No answer within the {format_duration(limit)} timeout; the dependency is hung, "
            "overloaded or unreachable (packets dropped).",
            observed_value=duration,
            observed_unit="s",
        )
    else:
        result = _outcome(task, check)
    return Result(
        status=result.status,
        output=redact.scrub(result.output),
        observed_value=result.observed_value,
        observed_unit=result.observed_unit,
        duration=duration,
        time=started_at,
        details=result.details,
        permanent=result.permanent,
    )


async def _wait_charged(task: asyncio.Future[Result], clock: _RunClock, limit: float) -> bool:
    """Wait until ``task`` is done or ``limit`` seconds have been charged; True when done.
    While the check waits in :func:`uncharged` nothing is charged, so the deadline moves; nor is
    the time the deadline's own timer fired late (an event loop busy with other work).
    """
    while not task.done():
        remaining = limit - clock.charged()
        if remaining <= 0:
            return False
        expected = time.perf_counter() + remaining
        await asyncio.wait({task}, timeout=remaining)
        late = time.perf_counter() - expected
        if not task.done() and late > 0:
            # The timer fired late because the event loop was busy with other work: drwatch's
            # own time, and the answer may be waiting in the loop's queue behind it.
            clock.uncharged_total += late
    return True


def _outcome(task: asyncio.Future[Result], check: Check[Any]) -> Result:
    try:
        result = task.result()
    except CheckFailed as exc:
        return Result(
            Status.FAIL,
            exc.message,
            exc.observed_value,
            exc.observed_unit,
            details=dict(exc.context),
            permanent=exc.permanent,
        )
    except asyncio.CancelledError:
        return Result(Status.FAIL, "The check was cancelled before it finished.")
    except Exception as exc:
        log.warning(
            "check raised an unexpected exception",
            extra={"check": check.name, "error": redact.scrub(repr(exc))},
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        return Result(
            Status.FAIL,
            f"Unexpected error in the check: {type(exc).__name__}: {exc}",
        )
    if not isinstance(result, Result):
        return Result(
            Status.FAIL, f"The check returned {type(result).__name__} instead of a Result."
        )
    return result


def _discard_outcome(task: asyncio.Future[Any]) -> None:
    # A timed-out check may still fail while it unwinds; that is expected and already reported.
    if not task.cancelled():
        task.exception()
