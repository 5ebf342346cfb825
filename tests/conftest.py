"""Fixtures shared across the suite: throwaway servers and a running drwatch app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import PostgresCluster, RedisServer


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL primary shared by the tests that only need a healthy server."""
    cluster = PostgresCluster.create(name="shared")
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A throwaway Redis shared by the tests that only need a healthy server."""
    server = RedisServer.create()
    yield server
    server.destroy()
