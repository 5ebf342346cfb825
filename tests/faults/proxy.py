"""A fault-injecting TCP proxy: passes, refuses or black-holes traffic to one upstream.

The proxy listens on a fixed 127.0.0.1 port and runs its own event loop in a daemon thread, so
it serves a drwatch in another process as well as one in the test's own loop. Its mode can be
switched at any time from the test:

- ``pass_through()``: every connection is relayed to the upstream, byte for byte;
- ``refuse()``: nothing listens on the port any more, so connecting is refused (RST) at once,
  and the connections already open are reset, as when a server's process has died;
- ``black_hole()``: connections are accepted and never answered, and bytes on the connections
  already open are dropped, as when a server hangs or a firewall drops its packets.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")
_CHUNK = 65536


class Mode(enum.Enum):
    PASS = "pass"
    REFUSE = "refuse"
    BLACK_HOLE = "black_hole"


class _Connection:
    """One accepted client connection and, while passing, its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        """Reset both sides at once (SO_LINGER 0 semantics: the peer sees a reset)."""
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    """A TCP proxy in front of ``upstream_host:upstream_port``; starts in :attr:`Mode.PASS`."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = Mode.PASS
        # Connections accepted while black-holed (they were never answered).
        self.swallowed_connections = 0
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.port = self._call(self._listen(0))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- switching (from any thread but the proxy's own)

    def pass_through(self) -> None:
        self._call(self._switch(Mode.PASS))

    def refuse(self) -> None:
        self._call(self._switch(Mode.REFUSE))

    def black_hole(self) -> None:
        self._call(self._switch(Mode.BLACK_HOLE))

    def close(self) -> None:
        """Stop listening, reset every connection and end the proxy's thread."""
        if not self._loop.is_running():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, work: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    # -- inside the proxy's loop

    async def _listen(self, port: int) -> int:
        # SO_REUSEADDR (asyncio's default on Unix) lets the port be bound again after refuse().
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port, backlog=512)
        return int(self._server.sockets[0].getsockname()[1])

    async def _switch(self, mode: Mode) -> None:
        previous, self.mode = self.mode, mode
        if mode is Mode.REFUSE:
            if self._server is not None:
                # close() only: wait_closed() would wait for the connections reset below.
                self._server.close()
                self._server = None
            self._reset_all()
        elif previous is Mode.REFUSE:
            await self._listen(self.port)
        if mode is Mode.PASS and previous is Mode.BLACK_HOLE:
            # Their clients gave up long ago; a relay that starts mid-stream would corrupt them.
            self._reset_all()

    async def _shutdown(self) -> None:
        await self._switch(Mode.REFUSE)
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _reset_all(self) -> None:
        for connection in list(self._connections):
            connection.abort()
        self._connections.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(writer)
        self._connections.add(connection)
        try:
            if self.mode is not Mode.PASS:
                self.swallowed_connections += 1
                await self._drain_silently(reader)
                return
            try:
                upstream_reader, connection.upstream = await asyncio.open_connection(*self.upstream)
            except OSError:
                connection.abort()
                return
            connection.tasks = [
                asyncio.create_task(self._relay(reader, connection.upstream)),
                asyncio.create_task(self._relay(upstream_reader, writer)),
            ]
            await asyncio.gather(*connection.tasks, return_exceptions=True)
        finally:
            self._connections.discard(connection)
            for side in (writer, connection.upstream):
                if side is not None:
                    side.close()

    async def _drain_silently(self, reader: asyncio.StreamReader) -> None:
        """Read and drop whatever the client sends until it hangs up: it never gets an answer."""
        with contextlib.suppress(OSError):
            while await reader.read(_CHUNK):
                pass

    async def _relay(self, source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(_CHUNK):
                if self.mode is Mode.BLACK_HOLE:
                    continue  # dropped on the floor: the other side waits for ever
                target.write(chunk)
                await target.drain()
            if self.mode is Mode.PASS and target.can_write_eof():
                target.write_eof()
        except OSError:
            pass


@contextlib.contextmanager
def fault_proxy(upstream_port: int) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream_port)
    try:
        yield proxy
    finally:
        proxy.close()


def connect_outcome(port: int, payload: bytes = b"PING\r\n", wait: float = 0.5) -> str:
    """What a client connecting to ``port`` sees: ``refused``, ``silent`` or ``answered``."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), wait)
    except ConnectionRefusedError:
        return "refused"
    with sock:
        sock.settimeout(wait)
        try:
            sock.sendall(payload)
            data = sock.recv(_CHUNK)
        except TimeoutError:
            return "silent"
        except ConnectionResetError:
            return "refused"
        return "answered" if data else "closed"
