"""Writes to the state store in the background, so probing never waits for the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from app import redact

log = logging.getLogger("drwatch.store")


class StoreWriter:
    """Writes to the store in the background, retrying with backoff while it is down.

    Callers never wait: ``submit()`` queues the write. The queue is bounded; when the store has
    been down so long that it fills, the oldest writes are dropped and counted, so memory stays
    flat and the newest history survives.
    """

    def __init__(self, *, max_pending: int = 10_000, retry_max: float = 60.0) -> None:
        self._queue: deque[tuple[str, Callable[[], Awaitable[None]]]] = deque()
        self._max_pending = max_pending
        self._retry_max = retry_max
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.healthy = True
        self.failures_total = 0
        self.dropped_total = 0
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="drwatch-store-writer")

    def submit(self, what: str, write: Callable[[], Awaitable[None]]) -> None:
        if len(self._queue) >= self._max_pending:
            self._queue.popleft()
            self.dropped_total += 1
        self._queue.append((what, write))
        self._wakeup.set()

    async def _loop(self) -> None:
        delay = 0.5
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            what, write = self._queue[0]
            try:
                await write()
            except Exception as exc:
                self.failures_total += 1
                self.last_error = redact.scrub(f"{type(exc).__name__}: {exc}")[:500]
                if self.healthy:
                    log.error(
                        "state store write failed; retrying in the background",
                        extra={"write": what, "error": self.last_error, "pending": self.pending},
                    )
                self.healthy = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            if self._queue and self._queue[0][1] is write:
                self._queue.popleft()
            if not self.healthy:
                log.warning("state store writes recovered", extra={"pending": self.pending})
            self.healthy = True
            delay = 0.5

    def note_direct_write(self, error: BaseException | None) -> None:
        """A write made outside the queue (a heartbeat ping is written while its job waits for
        the answer) tells about the store too: ``drwatch_store_up`` follows the last write of
        either kind, so a refused ping never leaves it saying the store is up.
        """
        if error is None:
            self.healthy = True
            return
        self.failures_total += 1
        self.last_error = redact.scrub(f"{type(error).__name__}: {error}")[:500]
        self.healthy = False

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until the queue is empty; used at shut-down and in tests."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._queue and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
