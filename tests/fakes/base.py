"""A small threaded HTTP server on 127.0.0.1 that the vendor fakes build on.

Each fake subclasses :class:`FakeApi` and implements :meth:`FakeApi.handle`, which sees the parsed
request and returns a :class:`Reply`. Like the vendor, a fake checks the method, the path and the
credentials, and answers with the vendor's documented JSON shapes. Tests inject faults with
:meth:`FakeApi.inject`: a status with the vendor's error body, a body that is not JSON, a body
of the wrong shape, or a delay.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers import ThreadedServer


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] = ("", 0)  # the client's address and port: one per connection

    @property
    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}

    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else None

    def basic(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        except ValueError:
            return None
        return user, password


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    raw: bytes | None = None
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.json).encode()


@dataclass
class Fault:
    """What to do instead of the normal answer, for requests whose path starts with ``path``."""

    status: int | None = None  # answer with the vendor's error body for this status
    json: Any = None  # answer 200 (or ``status``) with this JSON instead
    raw: bytes | None = None  # answer 200 (or ``status``) with these bytes (not JSON)
    delay: float = 0.0  # sleep before answering normally
    path: str = ""


class FakeApi:
    """Base of the vendor fakes: a ThreadingHTTPServer on a free loopback port."""

    vendor = "fake"

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.fault: Fault | None = None
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self.tls = tls
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        if tls is not None:
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = int(self._server.server_address[1])
        self._thread = ThreadedServer(self._server)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def inject(self, fault: Fault | None) -> None:
        self.fault = fault

    def reset(self) -> None:
        self.fault = None
        with self._lock:
            self.requests.clear()

    def stop(self) -> None:
        self._thread.stop()

    # -- to implement

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def error(self, status: int, message: str) -> Reply:
        """The vendor's error body for ``status``."""
        return Reply(status, {"error": {"message": message, "code": status}})

    # -- dispatch

    def respond(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
        fault = self.fault
        if fault is not None and request.path.startswith(fault.path):
            if fault.delay:
                time.sleep(fault.delay)
            elif fault.raw is not None:
                return Reply(fault.status or 200, raw=fault.raw, content_type="text/html")
            elif fault.json is not None:
                return Reply(fault.status or 200, fault.json)
            elif fault.status is not None:
                return self.error(fault.status, _REASONS.get(fault.status, "Error"))
        return self.handle(request)


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256


def _handler_for(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                path=parts.path,
                query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                peer=(str(self.client_address[0]), int(self.client_address[1])),
            )
            reply = api.respond(request)
            payload = reply.encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (ConnectionError, ssl.SSLError, TimeoutError):
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

    return Handler
