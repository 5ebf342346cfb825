"""A state store per test, on SQLite and on a real PostgreSQL server, migrated for real."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from app.store.db import upgrade
from tests.servers import PostgresCluster

_databases = itertools.count()


@pytest.fixture(scope="package")
def history_pg() -> Iterator[PostgresCluster]:
    """A PostgreSQL server holding drwatch's state (tests here may stop and start it)."""
    cluster = PostgresCluster.create(name="history-state")
    yield cluster
    cluster.destroy()


def new_pg_database(cluster: PostgresCluster) -> str:
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
