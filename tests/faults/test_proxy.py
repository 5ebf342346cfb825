"""The fault proxy does what the fault tests rely on: pass, refuse and black-hole on demand."""

from __future__ import annotations

import socket
from collections.abc import Callable

from tests.faults.proxy import FaultProxy, connect_outcome
from tests.servers import RedisServer


def test_the_proxy_passes_refuses_and_black_holes_when_switched(
    redis_server: RedisServer, proxies: Callable[[int], FaultProxy]
) -> None:
    """Redis answers through it; refused connects fail at once; a black hole never answers."""
    proxy = proxies(redis_server.port)
    assert connect_outcome(proxy.port) == "answered"
    proxy.refuse()
    assert connect_outcome(proxy.port) == "refused"
    proxy.black_hole()
    assert connect_outcome(proxy.port) == "silent"
    assert proxy.swallowed_connections == 1
    proxy.pass_through()
    assert connect_outcome(proxy.port) == "answered"


def test_switching_to_a_black_hole_silences_connections_already_open(
    redis_server: RedisServer, proxies: Callable[[int], FaultProxy]
) -> None:
    """A pooled connection opened while passing gets no answer once the proxy black-holes."""
    proxy = proxies(redis_server.port)
    with socket.create_connection(("127.0.0.1", proxy.port), 1.0) as sock:
        sock.settimeout(1.0)
        sock.sendall(b"PING\r\n")
        assert sock.recv(100) == b"+PONG\r\n"
        proxy.black_hole()
        sock.settimeout(0.5)
        sock.sendall(b"PING\r\n")
        try:
            answer = sock.recv(100)
        except TimeoutError:
            answer = None
        assert answer is None
