"""Waiting for a condition in tests, with a bound and a clear failure."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Block until ``condition()`` holds (for conditions on other processes)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 30.0
) -> None:
    """Wait until ``condition()`` holds, letting the event loop run in between.

    ``condition`` may be a coroutine function, for conditions that need I/O to be read (a row in
    the state store, a lease).
    """
    deadline = time.monotonic() + timeout
    while True:
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)
