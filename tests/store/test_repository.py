"""The state store: migrations, transitions, leases; SQLite and PostgreSQL; the store being down."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.logs import JsonFormatter
from app.store.db import upgrade
from app.store.repository import Store
from tests.harness import running_app, settings_for
from tests.polling import eventually
from tests.servers import PostgresCluster, refused_port


@pytest.fixture(scope="module")
def state_pg() -> Iterator[PostgresCluster]:
    """A PostgreSQL server holding drwatch's own state (not a monitored one)."""
    cluster = PostgresCluster.create(name="state")
    yield cluster
    cluster.destroy()


def _pg_url(cluster: PostgresCluster, database: str) -> str:
    cluster.psql(f"CREATE DATABASE {database}")
    return f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/{database}"


def _check(name: str, dsn: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "postgres",
        "interval": "1s",
        "timeout": "0.5s",
        "fall": 1,
        "rise": 1,
        "params": {"dsn": dsn},
        **extra,
    }


async def test_transitions_are_recorded_in_sqlite(pg: PostgresCluster, tmp_path: Path) -> None:
    """Each effective state change lands in the store with from, to, at and output."""
    async with running_app(
        {
            "checks": [
                _check("db", pg.dsn),
                _check("down", f"postgresql://h@127.0.0.1:{refused_port()}/x"),
            ]
        },
        settings_for(tmp_path),
    ) as running:
        await running.wait_ready()
        await running.runtime.writer.flush()
        rows = await running.runtime.store.transitions()
        history = (await running.client.get("/api/checks/down/history")).json()
    by_check = {row["check_name"]: row for row in rows}
    assert by_check["db"]["from_status"] is None
    assert by_check["db"]["to_status"] == "pass"
    assert by_check["down"]["to_status"] == "fail"
    assert "refused" in by_check["down"]["output"].lower()
    assert history["transitions"][0]["to_status"] == "fail"


async def test_migrations_and_transitions_work_on_postgresql(
    pg: PostgresCluster, state_pg: PostgresCluster, tmp_path: Path
) -> None:
    """DRWATCH_STATE_URL=postgresql+asyncpg://... is migrated with `db upgrade` and written to."""
    url = _pg_url(state_pg, "drwatch_state")
    await asyncio.to_thread(upgrade, url)
    settings = settings_for(tmp_path, state_url=url, migrate_on_start=False)
    async with running_app({"checks": [_check("db", pg.dsn)]}, settings) as running:
        await running.wait_ready()
        await running.runtime.writer.flush()
    assert (
        state_pg.psql(
            "SELECT to_status FROM check_transitions WHERE check_name = 'db'", "drwatch_state"
        )
        == "pass"
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_lease_has_one_holder_at_a_time(
    backend: str, state_pg: PostgresCluster, tmp_path: Path
) -> None:
    """Two owners racing for a lease: exactly one wins; it can be taken over once expired."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/lease.db"
    else:
        url = _pg_url(state_pg, "drwatch_lease")
    await asyncio.to_thread(upgrade, url)
    first, second = Store.from_url(url), Store.from_url(url)
    try:
        won = await asyncio.gather(
            *(
                store.try_acquire_lease("drill:monthly", owner, 30)
                for store, owner in ((first, "a"), (second, "b"))
                for _ in range(5)
            )
        )
        assert won.count(True) >= 1
        assert set(won[:5]) == {True} or set(won[5:]) == {True}
        assert not (True in won[:5] and True in won[5:])
        holder = await first.lease_owner("drill:monthly")
        other = "b" if holder == "a" else "a"
        assert not await first.try_acquire_lease("drill:monthly", other, 30)
        await first.release_lease("drill:monthly", holder or "")
        assert await first.try_acquire_lease("drill:monthly", other, 1.0)
        # Held for now, free once the second has passed.
        assert not await first.try_acquire_lease("drill:monthly", holder or "", 30)
        await eventually(lambda: first.try_acquire_lease("drill:monthly", holder or "", 30), 10)
        assert await first.lease_owner("drill:monthly") == holder
    finally:
        await first.dispose()
        await second.dispose()


async def test_probing_and_health_go_on_while_the_store_is_down(
    pg: PostgresCluster, tmp_path: Path
) -> None:
    """With the store stopped: /health answers, failures show in metrics and the log, and the
    queued transitions are written once the store is back."""
    store_cluster = PostgresCluster.create(name="flaky-state")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("drwatch.store").addHandler(handler)
    try:
        url = _pg_url(store_cluster, "drwatch_state")
        await asyncio.to_thread(upgrade, url)
        settings = settings_for(tmp_path, state_url=url, store_retry_max=0.5)
        flapping = _check("flapping", pg.dsn_for("drwatch_flap"))
        async with running_app({"checks": [_check("db", pg.dsn), flapping]}, settings) as running:
            await running.wait_ready()
            await running.runtime.writer.flush()
            store_cluster.stop()
            pg.psql("CREATE DATABASE drwatch_flap")  # the 'flapping' check now passes
            try:
                writer = running.runtime.writer
                await running.wait_until(lambda: not writer.healthy, 20)
                health = await running.client.get("/health")
                assert health.status_code == 200  # 'flapping' is critical and passes again
                metrics = (await running.client.get("/metrics")).text
                assert "drwatch_store_up 0.0" in metrics
                assert writer.pending >= 1
            finally:
                store_cluster.start()
            await running.wait_until(lambda: running.runtime.writer.healthy, 30)
            await running.runtime.writer.flush()
        rows = store_cluster.psql(
            "SELECT from_status || '>' || to_status FROM check_transitions "
            "WHERE check_name = 'flapping' ORDER BY id",
            "drwatch_state",
        ).split()
        assert rows[-1] == "fail>pass"
        assert "state store write failed" in stream.getvalue()
    finally:
        logging.getLogger("drwatch.store").removeHandler(handler)
        pg.psql("DROP DATABASE IF EXISTS drwatch_flap")
        store_cluster.destroy()
