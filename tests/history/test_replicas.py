"""Two drwatch replicas on one PostgreSQL state store: each answers for itself, `scope=all`
merges them, and a stopped store leaves the last answers served from memory, marked stale."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.store.db import upgrade
from tests.conftest import new_pg_database
from tests.harness import running_app, settings_for
from tests.servers import PostgresCluster, refused_port


@pytest.fixture(scope="module")
def store_pg() -> Iterator[PostgresCluster]:
    """The shared state store; the last test stops and restarts it."""
    cluster = PostgresCluster.create(name="replicas-state")
    yield cluster
    cluster.destroy()


def _config(dsn: str) -> dict[str, Any]:
    return {
        "checks": [
            {
                "name": "database",
                "type": "postgres",
                "criticality": "critical",
                "interval": "1s",
                "timeout": "0.5s",
                "fall": 1,
                "params": {"dsn": dsn},
            }
        ]
    }


async def test_each_replica_answers_for_itself_and_scope_all_merges_them(
    pg: PostgresCluster, store_pg: PostgresCluster, tmp_path: Path
) -> None:
    """r1 cannot reach its database, r2 can: r1's own SLO is all bad, every replica together
    is up while r2 is; r1's open incidents show in its metrics and on r2 under scope=all."""
    url = new_pg_database(store_pg)
    await asyncio.to_thread(upgrade, url)
    down = f"postgresql://u@127.0.0.1:{refused_port()}/d"
    r1 = settings_for(tmp_path, state_url=url, service_id="r1", migrate_on_start=False)
    r2 = settings_for(tmp_path, state_url=url, service_id="r2", migrate_on_start=False)
    async with (
        running_app(_config(down), r1) as one,
        running_app(_config(pg.dsn), r2) as two,
    ):
        await one.wait_ready()
        await two.wait_ready()
        await asyncio.sleep(1.5)  # some seconds of history on both
        for replica in (one, two):
            await replica.runtime.writer.flush()
        for replica in (one, two):
            assert await replica.runtime.history.refresh()
        mine = (await one.client.get("/api/slo")).json()
        together = (await one.client.get("/api/slo?scope=all")).json()
        theirs = (await two.client.get("/api/slo")).json()
        from_two = (await two.client.get("/api/incidents?scope=all&state=open")).json()
        metrics = (await one.client.get("/metrics")).text
    assert mine["service_id"] == "r1" and mine["scope"] == "self"
    day = mine["windows"]["1d"]
    assert day["good_seconds"] == 0 and day["bad_seconds"] > 1
    assert day["availability"] == 0.0
    assert theirs["windows"]["1d"]["bad_seconds"] == 0
    assert together["service_id"] == "*"
    assert together["windows"]["1d"]["bad_seconds"] < day["bad_seconds"]
    assert together["windows"]["1d"]["good_seconds"] > 1
    assert {(i["service_id"], i["check"]) for i in from_two["incidents"]} >= {("r1", "database")}
    assert 'drwatch_slo_availability_ratio{window="1d"} 0.0' in metrics
    open_line = next(
        line for line in metrics.splitlines() if line.startswith("drwatch_incidents_open")
    )
    assert float(open_line.split()[-1]) >= 2  # the check incident and the service incident


async def test_with_the_store_stopped_the_last_answers_are_served_as_stale(
    pg: PostgresCluster, store_pg: PostgresCluster, tmp_path: Path
) -> None:
    """Store down: /api/slo and /api/incidents answer 200 from memory, stale, with the time of
    the last read; once it is back the answers are fresh again."""
    url = new_pg_database(store_pg)
    await asyncio.to_thread(upgrade, url)
    settings = settings_for(tmp_path, state_url=url, service_id="r1", migrate_on_start=False)
    async with running_app(_config(pg.dsn), settings) as running:
        await running.wait_ready()
        await running.runtime.writer.flush()
        history = running.runtime.history
        assert await history.refresh()
        fresh = (await running.client.get("/api/slo")).json()
        store_pg.stop()
        try:
            assert not await history.refresh()
            slo = await running.client.get("/api/slo")
            incidents = await running.client.get("/api/incidents")
        finally:
            store_pg.start()
        assert await history.refresh()
        recovered = (await running.client.get("/api/slo")).json()
    assert fresh["stale"] is False
    assert slo.status_code == 200 and incidents.status_code == 200
    assert slo.json()["stale"] is True
    assert slo.json()["read_at"] == fresh["read_at"]
    assert slo.json()["windows"] == fresh["windows"]
    assert incidents.json()["stale"] is True
    assert recovered["stale"] is False
