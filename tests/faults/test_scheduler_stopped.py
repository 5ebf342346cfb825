"""A scheduler that stops running must not freeze the verdict: staleness is judged on read."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.harness import running_app, settings_for
from tests.servers import PostgresCluster

INTERVAL = 2.0


def _config(dsn: str) -> dict[str, object]:
    return {
        "checks": [
            {
                "name": "db",
                "type": "postgres",
                "criticality": "critical",
                "interval": f"{INTERVAL:g}s",
                "timeout": "1s",
                "params": {"dsn": dsn},
            }
        ]
    }


async def test_a_paused_scheduler_turns_every_answer_stale_within_three_intervals(
    pg: PostgresCluster, tmp_path: Path
) -> None:
    """/health (fast path and route), /health/db, /api/checks and /metrics all say fail."""
    settings = settings_for(tmp_path, health_details="always")
    async with running_app(_config(pg.dsn), settings) as running:
        await running.wait_ready()
        assert (await running.client.get("/health")).status_code == 200
        # Stop everything the scheduler does, its own staleness tick included.
        running.runtime.scheduler.scheduler.pause()
        paused_at = time.monotonic()
        last_result = running.runtime.monitor.snapshot.checks["db"].last_result
        assert last_result is not None

        async def stale() -> bool:
            return (await running.client.get("/health")).status_code == 503

        while not await stale():
            assert time.monotonic() - paused_at < 3 * INTERVAL + 2, "/health never went stale"
            await asyncio.sleep(0.1)
        # No newer result came in: the verdict changed because time passed, not because of a run.
        state = running.runtime.monitor.snapshot.checks["db"]
        assert state.last_result is last_result

        public = await running.client.get("/health")
        assert public.status_code == 503
        assert public.json()["status"] == "fail"
        verbose = await running.client.get("/health?verbose")
        assert verbose.status_code == 503
        assert "[-]db failed" in verbose.text
        one = await running.client.get("/health/db")
        assert one.status_code == 503
        assert one.json()["status"] == "fail"
        checks = (await running.client.get("/api/checks")).json()
        entry = next(c for c in checks["checks"] if c["name"] == "db")
        assert entry["status"] == "fail"
        assert entry["stale"] is True
        assert "Stale" in entry["output"]
        metrics = (await running.client.get("/metrics")).text
        families = {f.name: f for f in text_string_to_metric_families(metrics)}
        health = [s.value for s in families["drwatch_health_status"].samples]
        assert health == [0.0]
