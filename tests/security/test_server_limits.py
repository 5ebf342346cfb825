"""The HTTP server's limits against a real `drwatch serve`: header size and time, connections."""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.polling import wait_until
from tests.security.served import Served, served

CONFIG = {
    "checks": [
        {
            "name": "nightly-job",
            "type": "heartbeat",
            # info: the verdict stays pass, so every well-behaved /health is a 200.
            "criticality": "info",
            "params": {"token": "limits-token-0123456789", "period": "24h"},
        }
    ]
}


@pytest.fixture(scope="module")
def drwatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = {"DRWATCH_HEADER_TIMEOUT": "1s"}
    with served(tmp_path_factory.mktemp("limits"), CONFIG, env) as running:
        yield running


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _read_answer(sock: socket.socket) -> bytes:
    """What the server sent until it closed the connection (or 64 KiB of it)."""
    answer = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while len(answer) < 65536:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def _send_until_answered(sock: socket.socket, head: bytes, chunk: bytes, total: int) -> int:
    """Send ``head`` then ``chunk`` repeatedly up to ``total`` bytes, stopping as soon as the
    server answers or closes; the number of bytes sent.
    """
    sock.sendall(head)
    sent = len(head)
    while sent < total:
        readable, _, _ = select.select([sock], [], [], 0.01)
        if readable:
            break
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
    return sent


def test_headers_over_the_limit_are_answered_431(drwatch: Served) -> None:
    """100 KiB of headers (the limit is 64 KiB): 431, the connection closed."""
    with _connect(drwatch.port) as sock:
        filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: drwatch\r\n" + filler * 100 + b"\r\n")
        answer = _read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert "header_bytes" in drwatch.log()


def test_a_64_mb_header_is_cut_off_without_being_read(drwatch: Served) -> None:
    """One huge header value is refused once the limit is passed, not after reading 64 MB."""
    with _connect(drwatch.port) as sock:
        head = b"GET /health HTTP/1.1\r\nHost: drwatch\r\nX-Huge: "
        sent = _send_until_answered(sock, head, b"a" * 65536, 64 * 1024 * 1024)
        answer = _read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert sent < 16 * 1024 * 1024


def test_headers_within_the_limit_are_served(drwatch: Served) -> None:
    """60 KiB of headers is below the 64 KiB limit: an ordinary answer."""
    with drwatch.client() as client:
        response = client.get("/health/live", headers={"X-Filler": "a" * 60_000})
    assert response.status_code == 200


def test_headers_that_never_finish_are_cut_off_at_the_header_timeout(drwatch: Served) -> None:
    """A request line and half a header, then nothing: 408 and closed (the timeout is 1 s)."""
    with _connect(drwatch.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: drwatch\r\nX-Slow: a")
        answer = _read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    wait_until(lambda: "header_timeout" in drwatch.log(), 10)


def test_health_answers_while_1000_connections_hold_their_headers(tmp_path: Path) -> None:
    """With `ulimit -n 1024` and 1,000 connections that never finish their headers (and a
    header timeout far away), /health still answers every well-behaved request, and the log
    says the connection limit was hit.
    """
    env = {"DRWATCH_HEADER_TIMEOUT": "10m"}
    with served(tmp_path, CONFIG, env, open_files=1024) as drwatch:
        held: list[socket.socket] = []
        try:
            for _ in range(1000):
                sock = socket.create_connection(("127.0.0.1", drwatch.port), timeout=10)
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: drwatch\r\nX-Slow: a")
                held.append(sock)
            # Let the server accept everything that is queued, as far as it can.
            time.sleep(1)
            codes = []
            for _ in range(20):
                with _connect(drwatch.port) as sock:
                    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    answer = _read_answer(sock)
                codes.append(answer[:12])
        finally:
            for sock in held:
                sock.close()
        assert codes == [b"HTTP/1.1 200"] * 20, codes
        assert "connection limit" in drwatch.log()
