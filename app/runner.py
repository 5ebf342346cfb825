"""run_check(): the one place that owns a probe's timeout, timing and failure handling."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from app import redact
from app.checks.base import Check, CheckFailed, Result, Status
from app.units import format_duration

log = logging.getLogger("drwatch.runner")

# How long a cancelled check may take to unwind before we stop waiting for it. The Result is
# returned at the timeout regardless; this only bounds how long the task may linger.
_CANCEL_GRACE = 1.0


async def run_check(check: Check[Any], timeout: float | None = None) -> Result:
    """Run ``check`` once and return its Result. Never raises (except on cancellation of the
    caller), and returns no later than ``timeout`` seconds after it was called, even when the
    check ignores cancellation.
    """
    limit = check.timeout if timeout is None else timeout
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    task = asyncio.ensure_future(check.run())
    try:
        done, _ = await asyncio.wait({task}, timeout=limit)
    except asyncio.CancelledError:
        task.cancel()
        raise
    duration = time.perf_counter() - started
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
