"""/health, /health/live, /health/ready, /health/{check}, /api/checks against real servers."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from app.logs import JsonFormatter
from tests.harness import running_app, settings_for
from tests.servers import PostgresCluster, RedisServer, refused_port


def _pg_check(name: str, dsn: str, criticality: str = "critical", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "postgres",
        "criticality": criticality,
        "interval": "2s",
        "timeout": "1s",
        "params": {"dsn": dsn},
        **extra,
    }


def _redis_check(name: str, url: str, criticality: str = "critical") -> dict[str, Any]:
    return {
        "name": name,
        "type": "redis",
        "criticality": criticality,
        "interval": "2s",
        "timeout": "1s",
        "params": {"url": url},
    }


def _refused_dsn() -> str:
    return f"postgresql://postgres@127.0.0.1:{refused_port()}/postgres"


async def test_health_passes_with_healthy_dependencies(
    pg: PostgresCluster, redis_server: RedisServer, tmp_path: Path
) -> None:
    """200, application/health+json, status first, no-store, no details by default."""
    config = {"checks": [_pg_check("db", pg.dsn), _redis_check("cache", redis_server.url)]}
    async with running_app(config, settings_for(tmp_path)) as running:
        await running.wait_ready()
        response = await running.client.get("/health")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/health+json"
        assert response.headers["cache-control"] == "no-store"
        assert response.text.startswith('{"status":"pass"')
        assert "checks" not in response.json()


async def test_health_answers_head_like_get(pg: PostgresCluster, tmp_path: Path) -> None:
    """HEAD gives the same status code and headers, with no body."""
    config = {"checks": [_pg_check("db", pg.dsn), _pg_check("down", _refused_dsn())]}
    async with running_app(config, settings_for(tmp_path)) as running:
        await running.wait_ready()
        get = await running.client.get("/health")
        head = await running.client.head("/health")
        assert head.status_code == get.status_code == 503
        assert head.content == b""
        assert head.headers["content-type"] == "application/health+json"
        for path in ("/health/live", "/health/ready", "/health/db"):
            assert (await running.client.head(path)).status_code == 200


@pytest.mark.parametrize(
    ("criticality", "code", "status"),
    [("critical", 503, "fail"), ("degraded", 200, "warn"), ("info", 200, "pass")],
)
async def test_only_a_critical_failure_makes_health_503(
    pg: PostgresCluster, tmp_path: Path, criticality: str, code: int, status: str
) -> None:
    """A failing dependency fails over DNS only when it is critical."""
    config = {"checks": [_pg_check("db", pg.dsn), _pg_check("dep", _refused_dsn(), criticality)]}
    async with running_app(config, settings_for(tmp_path)) as running:
        await running.wait_ready()
        response = await running.client.get("/health")
        assert (response.status_code, response.json()["status"]) == (code, status)
        one = await running.client.get("/health/dep")
        assert one.status_code == 503
        assert one.json()["status"] == "fail"


async def test_details_need_the_token(pg: PostgresCluster, tmp_path: Path) -> None:
    """Per-check details only with the right bearer token; a wrong one gets the public body."""
    settings = settings_for(tmp_path, details_token="details-token-123")
    async with running_app({"checks": [_pg_check("db", pg.dsn)]}, settings) as running:
        await running.wait_ready()
        public = (await running.client.get("/health")).json()
        wrong = await running.client.get("/health", headers={"Authorization": "Bearer nope"})
        right = await running.client.get(
            "/health", headers={"Authorization": "Bearer details-token-123"}
        )
        assert "checks" not in public
        assert "checks" not in wrong.json()
        entry = right.json()["checks"]["db"][0]
        assert entry["status"] == "pass"
        assert entry["componentType"] == "postgres"
        assert "answered" in entry["output"]
        one = await running.client.get(
            "/health/db", headers={"Authorization": "Bearer details-token-123"}
        )
        assert one.json()["checks"]["db"][0]["status"] == "pass"
        assert "checks" not in (await running.client.get("/health/db")).json()


async def test_details_always_shows_them_to_everyone(pg: PostgresCluster, tmp_path: Path) -> None:
    """health_details=always is for private networks."""
    settings = settings_for(tmp_path, health_details="always")
    async with running_app({"checks": [_pg_check("db", pg.dsn)]}, settings) as running:
        await running.wait_ready()
        assert "checks" in (await running.client.get("/health")).json()


async def test_status_is_within_the_first_5120_bytes_with_many_checks(
    pg: PostgresCluster, tmp_path: Path
) -> None:
    """Route 53 string matching reads 5,120 bytes: status comes first even with details."""
    checks = [_pg_check(f"db-{i:03d}", pg.dsn, "info") for i in range(120)]
    settings = settings_for(tmp_path, health_details="always")
    async with running_app({"checks": checks}, settings) as running:
        response = await running.client.get("/health")
        assert len(response.content) > 5120
        assert b'"status":' in response.content[:5120]
        assert response.content.index(b'"status":') < 10


async def test_verbose_lists_checks_as_text(pg: PostgresCluster, tmp_path: Path) -> None:
    """?verbose gives [+]/[-] lines; outputs only with the token."""
    config = {"checks": [_pg_check("db", pg.dsn), _pg_check("down", _refused_dsn(), "info")]}
    async with running_app(config, settings_for(tmp_path)) as running:
        await running.wait_ready()
        response = await running.client.get("/health?verbose")
        assert response.headers["content-type"].startswith("text/plain")
        assert "[+]db ok" in response.text
        assert "[-]down failed\n" in response.text
        assert response.text.endswith("health check passed\n")


async def test_unknown_check_is_404(pg: PostgresCluster, tmp_path: Path) -> None:
    """/health/{check} and /api/checks/{name} say which name is unknown."""
    async with running_app({"checks": [_pg_check("db", pg.dsn)]}, settings_for(tmp_path)) as r:
        response = await r.client.get("/health/nosuch")
        assert response.status_code == 404
        assert "nosuch" in response.json()["detail"]
        assert (await r.client.get("/api/checks/nosuch")).status_code == 404


async def test_ready_waits_for_the_first_round(pg: PostgresCluster, tmp_path: Path) -> None:
    """Before any result /health/ready is 503; after the first round it is 200."""
    config = {"checks": [_pg_check("db", pg.dsn)]}
    async with running_app(config, settings_for(tmp_path), run_scheduler=False) as running:
        assert (await running.client.get("/health/ready")).status_code == 503
        assert (await running.client.get("/health")).status_code == 503
        await running.runtime.scheduler.run_now("db")
        assert (await running.client.get("/health/ready")).status_code == 200


async def test_live_fails_when_the_scheduler_stops_ticking(
    pg: PostgresCluster, tmp_path: Path
) -> None:
    """/health/live reflects the scheduler's own liveness."""
    async with running_app({"checks": [_pg_check("db", pg.dsn)]}, settings_for(tmp_path)) as r:
        assert (await r.client.get("/health/live")).status_code == 200
        scheduler = r.runtime.scheduler
        scheduler.liveness_limit = 0.3
        scheduler.scheduler.pause()
        await r.wait_until(lambda: not scheduler.alive, 5)
        response = await r.client.get("/health/live")
        assert response.status_code == 503
        assert "scheduler" in response.json()["output"]


async def test_api_checks_lists_states(pg: PostgresCluster, tmp_path: Path) -> None:
    """/api/checks and /api/checks/{name} show status, output and the last result."""
    settings = settings_for(tmp_path, health_details="always")
    async with running_app({"checks": [_pg_check("db", pg.dsn)]}, settings) as r:
        await r.wait_ready()
        listing = (await r.client.get("/api/checks")).json()
        assert listing["checks"][0]["name"] == "db"
        one = (await r.client.get("/api/checks/db")).json()
        assert one["status"] == "pass"
        assert one["last_result"]["status"] == "pass"
        assert one["runs"]["pass"] >= 1


async def test_a_dsn_password_never_leaves_drwatch(pg: PostgresCluster, tmp_path: Path) -> None:
    """Wrong password: not in any response, log line or metric."""
    password = "Sup3r-Secret-Pw"
    pg.add_password_user("leaky", "right-password-1")
    dsn = pg.dsn_for("postgres", user="leaky", password=password)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        settings = settings_for(tmp_path, health_details="always")
        async with running_app({"checks": [_pg_check("db", dsn)]}, settings) as running:
            await running.wait_ready()
            bodies = [
                (await running.client.get(path)).text
                for path in (
                    "/health",
                    "/health?verbose",
                    "/health/db",
                    "/api/checks",
                    "/api/checks/db",
                    "/metrics",
                    "/api/scheduler",
                )
            ]
            state = running.runtime.monitor.snapshot.checks["db"]
            assert state.effective is not None
            assert state.effective.value == "fail"
            assert "password" in state.output.lower()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    logged = stream.getvalue()
    assert "check changed state" in logged
    for text in [*bodies, logged, json.dumps(state.as_dict(), default=str)]:
        assert password not in text


async def test_head_works_wherever_get_does(pg: PostgresCluster, tmp_path: Path) -> None:
    """Uptime monitors send HEAD: the same status as GET on /api/checks*, /api/scheduler and
    /metrics (never 405).
    """
    async with running_app({"checks": [_pg_check("db", pg.dsn)]}, settings_for(tmp_path)) as r:
        await r.wait_ready()
        for path in (
            "/api/checks",
            "/api/checks/db",
            "/api/checks/db/history",
            "/api/scheduler",
            "/metrics",
            "/api/backup-status",
        ):
            get, head = await r.client.get(path), await r.client.head(path)
            assert head.status_code == get.status_code, path
            assert head.headers["content-type"] == get.headers["content-type"], path
        assert (await r.client.head("/api/checks/nosuch")).status_code == 404
