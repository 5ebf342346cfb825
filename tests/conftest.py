"""Fixtures shared across the suite: throwaway servers and a running drwatch app."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from app.store.db import upgrade
from tests.fakes.rds_api import AWS_ENV, MotoServer
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


_databases = itertools.count()


@pytest.fixture(scope="session")
def history_pg() -> Iterator[PostgresCluster]:
    """A PostgreSQL server holding drwatch's own state (not a monitored one)."""
    cluster = PostgresCluster.create(name="history-state")
    yield cluster
    cluster.destroy()


def new_pg_database(cluster: PostgresCluster) -> str:
    """The URL of a new, empty state-store database on ``cluster``."""
    name = f"history_{next(_databases)}"
    cluster.psql(f"CREATE DATABASE {name}")
    return f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def state_url(
    request: pytest.FixtureRequest, tmp_path: Path, history_pg: PostgresCluster
) -> AsyncIterator[str]:
    """The URL of a fresh, migrated state store of each kind."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/state.db"
    else:
        url = new_pg_database(history_pg)
    await asyncio.to_thread(upgrade, url)
    yield url


# The AWS tests' moto server and fake credentials, one per test module. (Modules that need
# moto without the credentials in the environment define their own ``moto``.)
@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in AWS_ENV.items():
            env.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def moto(aws_env: None) -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()
