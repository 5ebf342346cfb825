"""A configured maintenance window in a running drwatch: a critical database stopped inside it
keeps /health at 200, and the real state applies the moment the window ends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.checks.base import Status
from tests.harness import running_app, settings_for
from tests.polling import eventually
from tests.servers import PostgresCluster, refused_port

DETAILS = {"Authorization": "Bearer maintenance-details-token"}


@pytest.fixture
def database() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster.create(name="maintenance-db")
    yield cluster
    cluster.destroy()


def _config(dsn: str, window: dict[str, Any]) -> dict[str, Any]:
    return {
        "checks": [
            {
                "name": "db",
                "type": "postgres",
                "criticality": "critical",
                "interval": "1s",
                "timeout": "0.8s",
                "fall": 1,
                "rise": 2,
                "params": {"dsn": dsn},
            }
        ],
        "maintenance": [
            {"name": "nightly-restart", "reason": "PostgreSQL minor upgrade", **window}
        ],
    }


async def test_a_database_stopped_in_a_window_is_warn_and_fails_over_when_the_window_ends(
    database: PostgresCluster, tmp_path: Path
) -> None:
    """Inside the window /health is 200 warn naming it; the first request after its end is 503."""
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=15)
    window = {"start": "2026-01-01T00:00:00Z", "end": end.isoformat()}
    settings = settings_for(tmp_path, details_token="maintenance-details-token")
    async with running_app(_config(database.dsn, window), settings) as running:
        await running.wait_ready()
        assert (await running.client.get("/health")).json()["status"] == "pass"
        database.stop()
        monitor = running.runtime.monitor
        await eventually(lambda: monitor.state("db").actual is Status.FAIL, 10)
        assert datetime.now(UTC) < end, "set-up outlasted the window; the test proves nothing"
        public = await running.client.get("/health")
        detailed = await running.client.get("/health", headers=DETAILS)
        one = await running.client.get("/health/db", headers=DETAILS)
        checks = (await running.client.get("/api/checks")).json()["checks"]
        assert (public.status_code, public.json()["status"]) == (200, "warn")
        entry = detailed.json()["checks"]["db"][0]
        assert entry["status"] == "warn"
        assert entry["output"].startswith(
            f"in maintenance window nightly-restart until {end:%H:%M}: "
        )
        assert (one.status_code, one.json()["status"]) == (200, "warn")
        assert checks[0]["maintenance"]["name"] == "nightly-restart"
        assert checks[0]["maintenance"]["until"] == end.isoformat().replace("+00:00", "Z")
        metrics = (await running.client.get("/metrics")).text
        assert 'drwatch_maintenance_active{check="db"} 1.0' in metrics
        assert "drwatch_health_status 1.0" in metrics
        await eventually(lambda: datetime.now(UTC) >= end, 30)
        after = await running.client.get("/health")
        assert (after.status_code, after.json()["status"]) == (503, "fail")
        assert (await running.client.get("/health/db")).status_code == 503
        # The failure was recorded as it happened, window or not.
        await running.runtime.writer.flush()
        rows = await running.runtime.store.transitions("db")
        assert rows[0]["to_status"] == "fail"


async def test_a_failover_window_keeps_health_at_503(tmp_path: Path) -> None:
    """failover: true: the stopped database still turns /health into 503, its output names the
    window."""
    dsn = f"postgresql://postgres@127.0.0.1:{refused_port()}/postgres"
    window = {"start": "2026-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z", "failover": True}
    settings = settings_for(tmp_path, details_token="maintenance-details-token")
    async with running_app(_config(dsn, window), settings) as running:
        await running.wait_ready()
        public = await running.client.get("/health")
        detailed = await running.client.get("/health", headers=DETAILS)
    assert (public.status_code, public.json()["status"]) == (503, "fail")
    entry = detailed.json()["checks"]["db"][0]
    assert entry["status"] == "fail"
    assert entry["output"].startswith("in maintenance window nightly-restart until 00:00: ")
