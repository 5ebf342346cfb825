"""Running a check once the way the scheduler does, and what every vendor test asserts."""

from __future__ import annotations

from typing import Any

from app.checks.base import Check, Result, Status
from app.runner import run_check


async def run_once(check: Check[Any], timeout: float | None = None) -> Result:
    """One run through the runner (timeout, timing, exception -> Result), then close()."""
    try:
        return await run_check(check, timeout)
    finally:
        await check.close()


def assert_secret_absent(result: Result, *secrets: str) -> None:
    """No secret in the output or the details, not even in part of a vendor's message."""
    shown = result.output + str(result.details)
    for secret in secrets:
        assert secret not in shown


def assert_failed(result: Result, *words: str, permanent: bool | None = None) -> None:
    assert result.status is Status.FAIL, result.output
    for word in words:
        assert word.lower() in result.output.lower(), result.output
    if permanent is not None:
        assert result.permanent is permanent, result.output
