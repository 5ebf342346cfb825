"""run_check(): timeouts, exceptions and secrets, whatever the check does."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from app import redact
from app.checks.base import Check, CheckFailed, Params, Result, Status
from app.runner import run_check, uncharged


class _Script(Check[Params]):
    """A check whose behaviour the test chooses: stands in for a misbehaving dependency."""

    Params = Params

    def __init__(self, behaviour: str, timeout: float = 0.3) -> None:
        super().__init__("scripted", Params(), timeout=timeout)
        self.behaviour = behaviour
        self.cancelled = False

    async def run(self) -> Result:
        if self.behaviour == "hang":
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        if self.behaviour == "stubborn":
            # Swallows cancellation and carries on for a while, as badly written client code
            # sometimes does.
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled = True
            await asyncio.sleep(1.5)
            return self.passed("too late")
        if self.behaviour == "failed":
            raise CheckFailed("The token was rejected.", permanent=True, context={"code": 401})
        if self.behaviour == "nap":
            await asyncio.sleep(0.05)
            return self.passed("rested")
        if self.behaviour == "queued":
            # Waits for one of drwatch's own resources longer than the whole timeout, then the
            # dependency answers at once.
            async with uncharged():
                await asyncio.sleep(self.timeout * 2)
            return self.passed("answered once sent")
        if self.behaviour == "queued-then-hung":
            async with uncharged():
                await asyncio.sleep(self.timeout)
            await asyncio.sleep(3600)
        if self.behaviour == "bug":
            raise KeyError("status")
        if self.behaviour == "leaky":
            return self.warned("login as admin:hunter2-secret failed at postgresql://u:pw9@h/d")
        return self.passed("fine", observed_value=1.0, observed_unit="s")


async def test_it_returns_the_checks_result_with_timing() -> None:
    """A passing check comes back with the duration of its run and the UTC time it started."""
    before, started = datetime.now(UTC), time.perf_counter()
    result = await run_check(_Script("nap"))
    elapsed, after = time.perf_counter() - started, datetime.now(UTC)
    assert result.status is Status.PASS
    assert result.output == "rested"
    # The check slept 0.05 s, and the runner cannot have timed more than the whole call.
    assert 0.05 <= result.duration <= elapsed
    assert result.time.utcoffset() == UTC.utcoffset(None)
    assert before <= result.time <= after


async def test_it_fails_a_hung_check_at_its_timeout_and_cancels_it() -> None:
    """A hang turns into a fail that says so, and the check's task is cancelled."""
    check = _Script("hang", timeout=0.2)
    started = time.monotonic()
    result = await run_check(check)
    assert time.monotonic() - started < 2.0
    assert result.status is Status.FAIL
    assert "timeout" in result.output
    await asyncio.sleep(0)
    assert check.cancelled


async def test_it_returns_even_when_the_check_ignores_cancellation() -> None:
    """run_check never hangs past the timeout, even for a check that swallows CancelledError."""
    check = _Script("stubborn", timeout=0.2)
    started = time.monotonic()
    result = await run_check(check)
    assert time.monotonic() - started < 2.0
    assert result.status is Status.FAIL


async def test_it_turns_check_failed_into_a_result() -> None:
    """CheckFailed keeps its message, permanence and context."""
    result = await run_check(_Script("failed"))
    assert result.status is Status.FAIL
    assert result.permanent
    assert result.output == "The token was rejected."
    assert result.details == {"code": 401}


async def test_it_turns_an_unexpected_exception_into_a_failure() -> None:
    """A bug in a check is a failed result naming the exception, not a crash."""
    result = await run_check(_Script("bug"))
    assert result.status is Status.FAIL
    assert "KeyError" in result.output


async def test_it_scrubs_secrets_from_outputs() -> None:
    """Registered secrets and URL passwords never leave through an output."""
    redact.register(["hunter2-secret"])
    result = await run_check(_Script("leaky"))
    assert "hunter2-secret" not in result.output
    assert "pw9" not in result.output
    assert "***" in result.output


async def test_time_waiting_for_drwatchs_own_resources_is_not_charged_to_the_timeout() -> None:
    """A run that queues inside drwatch longer than its timeout still passes, and its duration
    is the time charged to the dependency."""
    result = await run_check(_Script("queued", timeout=0.2))
    assert result.status is Status.PASS, result.output
    assert result.duration < 0.2


async def test_the_timeout_still_runs_once_the_request_is_sent() -> None:
    """After an uncharged wait, a hung dependency fails at its own timeout."""
    check = _Script("queued-then-hung", timeout=0.2)
    result = await run_check(check)
    assert result.status is Status.FAIL
    assert "timeout" in result.output
