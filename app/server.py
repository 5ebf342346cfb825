"""The HTTP server: uvicorn with httptools, and the limits that keep ``/health`` answering.

uvicorn alone accepts request headers of any size and waits for them forever, so one client
could grow memory past the pod's limit with a huge header, or use up every file descriptor with
connections that never finish their headers, and ``/health`` would stop answering (Route 53 then
fails the region over). :class:`LimitedHttpProtocol` adds, per connection:

* a bound on the size of the request line and headers (``DRWATCH_MAX_HEADER_BYTES``): a larger
  request is answered ``431 Request Header Fields Too Large`` and the connection is closed, as
  soon as the bound is passed, before the rest is read;
* a bound on the time to receive them (``DRWATCH_HEADER_TIMEOUT``), counted from the first byte
  of a request (a new connection counts from its opening): past it, ``408`` and close;
* a bound on open connections (``DRWATCH_MAX_CONNECTIONS``, by default half the file descriptor
  limit): a connection beyond it closes the oldest connection still waiting for its headers, so
  a well-behaved client, which sends its request at once, is still answered. When every
  connection is busy with a request, the new one is answered ``503`` and closed.

Each limit logs a warning when it is hit (at most one line per limit every 10 s, with a count),
so an operator sees why clients were cut off. Everything else is uvicorn's httptools protocol
unchanged; the server's other settings are in :func:`server_config`.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from asyncio import TimerHandle
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import Settings

log = logging.getLogger("drwatch.server")

_LOG_EVERY = 10.0
# Leave this many descriptors for the store, the probes' sockets and files.
_RESERVED_FDS = 128


def _response(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


_TOO_LARGE = _response(
    b"431 Request Header Fields Too Large", b"The request line and headers are too large.\n"
)
_TIMED_OUT = _response(b"408 Request Timeout", b"The request headers did not arrive in time.\n")
_BUSY = _response(b"503 Service Unavailable", b"Too many connections; retry.\n")


class LimitLog:
    """One warning per limit every :data:`_LOG_EVERY` seconds, saying how often it was hit."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def hit(self, limit: str, message: str, **extra: Any) -> None:
        self._count[limit] = self._count.get(limit, 0) + 1
        now = time.monotonic()
        if now - self._last.get(limit, -_LOG_EVERY) < _LOG_EVERY:
            return
        self._last[limit] = now
        count, self._count[limit] = self._count[limit], 0
        log.warning(message, extra={"limit": limit, "times": count, **extra})


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded request headers and connections.

    :func:`protocol_class` makes a subclass with the limits of one server; the class attributes
    below are shared by that server's connections.
    """

    max_header_bytes: ClassVar[int]
    header_timeout: ClassVar[float]
    max_connections: ClassVar[int]
    # Connections waiting for request headers, oldest first (a dict keeps insertion order).
    waiting: ClassVar[dict[LimitedHttpProtocol, None]]
    limits: ClassVar[LimitLog]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bytes received since the request began, while its headers are not complete.
        self._received_in_headers = 0
        # The request line and header fields as parsed (exact, whatever else a read carried).
        self._header_size = 0
        self._header_timer: TimerHandle | None = None
        self._rejected = False

    # -- connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections and not self._make_room():
            self.limits.hit(
                "connections",
                "connection limit reached and every connection is busy; a new one was refused",
                max_connections=self.max_connections,
            )
            self._reject(_BUSY)
            return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _make_room(self) -> bool:
        """Close the oldest connection still waiting for its headers; False if there is none."""
        for oldest in self.waiting:
            if oldest is not self:
                self.limits.hit(
                    "connections",
                    "connection limit reached; closed the oldest connections still waiting for "
                    "their request headers",
                    max_connections=self.max_connections,
                )
                oldest._reject(_BUSY)
                return True
        return False

    # -- the header phase of each request

    def _await_headers(self) -> None:
        self._received_in_headers = 0
        self.waiting[self] = None
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._timed_out)

    def _stop_waiting(self) -> None:
        self.waiting.pop(self, None)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        self.limits.hit(
            "header_timeout",
            "closed connections whose request headers did not arrive in time",
            header_timeout_seconds=self.header_timeout,
        )
        self._reject(_TIMED_OUT)

    def _too_large(self) -> None:
        self.limits.hit(
            "header_bytes",
            "answered 431 to requests whose headers were too large",
            max_header_bytes=self.max_header_bytes,
        )
        self._reject(_TOO_LARGE)

    def _reject(self, answer: bytes) -> None:
        if self._rejected:
            return
        self._rejected = True
        self._stop_waiting()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        if self in self.waiting:
            self._received_in_headers += len(data)
        super().data_received(data)
        # Still waiting for the end of the headers: every byte fed since the request began was
        # part of them (httptools keeps an unfinished header in memory, so stop it here).
        if self in self.waiting and self._received_in_headers > self.max_header_bytes:
            self._too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_size = 0
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._timed_out)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._header_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._header_size += len(name) + len(value) + 4  # ": " and CRLF

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        # Headers that end in the same read as a request body were not caught by the count of
        # bytes received; their parsed size is exact.
        if self._header_size > self.max_header_bytes:
            self._too_large()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._rejected:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._rejected:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not (self._rejected or pipelined or self.transport.is_closing()):
            # Keep-alive: the next request's headers are awaited (uvicorn's keep-alive timeout
            # bounds the idle time before its first byte; the header timeout starts there).
            self._received_in_headers = 0
            self.waiting[self] = None

    def send_400_response(self, msg: str) -> None:
        if not self._rejected:
            self._stop_waiting()
            super().send_400_response(msg)


def default_max_connections() -> int:
    """Half the file descriptor limit (at least 64): accepting more would starve everything else."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(64, min(soft // 2, soft - _RESERVED_FDS))


def protocol_class(
    *, max_header_bytes: int, header_timeout: float, max_connections: int
) -> type[LimitedHttpProtocol]:
    """A protocol class with these limits, and its own set of waiting connections."""
    return type(
        "DrwatchHttpProtocol",
        (LimitedHttpProtocol,),
        {
            "max_header_bytes": max_header_bytes,
            "header_timeout": header_timeout,
            "max_connections": max_connections,
            "waiting": {},
            "limits": LimitLog(),
        },
    )


def server_config(app: Any, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    """Every setting of drwatch's HTTP server, in one place."""
    protocol = protocol_class(
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        max_connections=settings.max_connections or default_max_connections(),
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def serve(app: Any, settings: Settings, *, host: str, port: int) -> None:
    """Run ``app`` until SIGTERM or SIGINT."""
    uvicorn.Server(server_config(app, settings, host=host, port=port)).run()
