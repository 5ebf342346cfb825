"""POST /api/backups/{name}/ping|start|fail: authentication, bad input, the store being down."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from app.checks.base import Status
from app.store.db import upgrade
from tests.harness import running_app, settings_for
from tests.servers import PostgresCluster

TOKEN = "hb-token-0123456789"


def _config(**params: Any) -> dict[str, Any]:
    return {
        "checks": [
            {
                "name": "nightly-job",
                "type": "heartbeat",
                "params": {"token": TOKEN, "period": "24h", "grace": "1h", **params},
            }
        ]
    }


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_a_ping_turns_the_source_to_pass_and_shows_in_backup_status(tmp_path: Path) -> None:
    """A success with a size lands in the store and /api/backup-status at once."""
    async with running_app(_config(), settings_for(tmp_path)) as running:
        await running.wait_ready()
        assert running.runtime.monitor.state("nightly-job").effective.value == "fail"  # type: ignore[union-attr]
        start = await running.client.post("/api/backups/nightly-job/start", headers=AUTH)
        assert start.status_code == 200, start.text
        ping = await running.client.post(
            "/api/backups/nightly-job/ping",
            headers=AUTH,
            json={"size_bytes": 123456, "duration_seconds": 42.5, "location": "s3://b/k.dump"},
        )
        assert ping.status_code == 200, ping.text
        assert ping.json()["recorded"] is True
        # One passing run is enough: a heartbeat source rises at once (rise 1 by default).
        await running.wait_until(
            lambda: running.runtime.monitor.state("nightly-job").effective is Status.PASS, 10
        )
        response = await running.client.get("/api/backup-status")
        status = response.json()
    assert response.status_code == 200
    (source,) = status["sources"]
    assert source["within_rpo"] is True
    assert source["size_bytes"] == 123456
    assert source["location"] == "s3://b/k.dump"


async def test_pings_without_the_right_token_are_401(tmp_path: Path) -> None:
    """No token, a wrong token, a non-bearer scheme: 401, nothing recorded."""
    async with running_app(_config(), settings_for(tmp_path)) as running:
        for headers in ({}, {"Authorization": "Bearer wrong-token-xyz"}, {"Authorization": TOKEN}):
            response = await running.client.post("/api/backups/nightly-job/ping", headers=headers)
            assert response.status_code == 401
            assert TOKEN not in response.text
        assert await running.runtime.store.heartbeat_events("nightly-job") == []


async def test_unknown_sources_answer_like_a_wrong_token(tmp_path: Path) -> None:
    """An unknown name, a check that takes no pushes and a wrong token get the same 401."""
    config = _config()
    config["checks"].append(
        {"name": "db", "type": "postgres", "params": {"dsn": "postgresql://h/d"}}
    )
    async with running_app(config, settings_for(tmp_path), run_scheduler=False) as running:
        answers = [
            await running.client.post(url, headers=headers)
            for url, headers in (
                ("/api/backups/nosuch/ping", AUTH),
                ("/api/backups/db/ping", AUTH),
                ("/api/backups/nightly-job/ping", {"Authorization": "Bearer wrong-token-xyz"}),
            )
        ]
        assert {a.status_code for a in answers} == {401}
        assert len({a.content for a in answers}) == 1
        assert len({a.headers.get("www-authenticate") for a in answers}) == 1
        bad_action = await running.client.post("/api/backups/nightly-job/explode", headers=AUTH)
        assert 400 <= bad_action.status_code < 500


async def test_bad_bodies_get_4xx_never_500(tmp_path: Path) -> None:
    """Bad JSON, a non-object, wrong types, unknown keys, a huge body: 4xx with a message.

    Every invalid body is a 422 in the one shape of validation errors; only size is a 413.
    """
    async with running_app(_config(), settings_for(tmp_path), run_scheduler=False) as running:
        post = running.client.post
        url = "/api/backups/nightly-job/ping"
        cases = [
            (b"{not json", 422),
            (b"[1, 2]", 422),
            (b'{"size_bytes": "big"}', 422),
            (b'{"size_bytes": -1}', 422),
            (b'{"colour": "red"}', 422),
            (b"\xff\xfe\x00", 422),
            (b'{"message": "' + b"x" * 40_000 + b'"}', 413),
        ]
        for body, code in cases:
            response = await post(
                url, headers={**AUTH, "content-type": "application/json"}, content=body
            )
            assert response.status_code == code, (body[:30], response.text)
            assert response.json()["detail"]
        assert await running.runtime.store.heartbeat_events("nightly-job") == []


async def test_a_ping_is_refused_with_503_while_the_store_is_down(tmp_path: Path) -> None:
    """The job is told to retry, so an acknowledged ping is never one that was lost."""
    cluster = PostgresCluster.create(name="hb-state")
    try:
        cluster.psql("CREATE DATABASE state")
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/state"
        await asyncio.to_thread(upgrade, url)
        settings = settings_for(tmp_path, state_url=url, migrate_on_start=False)
        async with running_app(_config(), settings, run_scheduler=False) as running:
            cluster.stop()
            response = await running.client.post("/api/backups/nightly-job/ping", headers=AUTH)
            assert response.status_code == 503
            assert "retry" in response.json()["detail"]
            cluster.start()
            response = await running.client.post("/api/backups/nightly-job/ping", headers=AUTH)
            assert response.status_code == 200
        assert cluster.psql("SELECT count(*) FROM heartbeat_events", "state") == "1"
    finally:
        cluster.destroy()


async def test_one_success_ping_turns_a_failing_source_to_pass_at_once(tmp_path: Path) -> None:
    """A heartbeat source needs no second passing run (rise 1): the ping's own run decides."""
    async with running_app(_config(), settings_for(tmp_path)) as running:
        await running.wait_ready()
        monitor = running.runtime.monitor
        assert monitor.state("nightly-job").effective is Status.FAIL
        ping = await running.client.post("/api/backups/nightly-job/ping", headers=AUTH)
        assert ping.status_code == 200, ping.text
        await running.wait_until(lambda: monitor.state("nightly-job").consecutive_ok >= 1, 10)
        assert monitor.state("nightly-job").consecutive_ok == 1
        assert monitor.state("nightly-job").effective is Status.PASS
        assert (await running.client.get("/api/backup-status")).status_code == 200
