"""The ASGI fast path for the public GET|HEAD /health, in front of a real drwatch app.

The fast path must answer exactly what the FastAPI route would for the same request, and hand
everything else (details, verbose text, other paths and methods) on to the app untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.fastpath import HealthFastPath
from app.api.render import detailed_health_body, public_health_body
from tests.harness import RunningApp, running_app, settings_for
from tests.servers import PostgresCluster, refused_port

TOKEN = "fastpath-details-token-1"


def _pg_check(name: str, dsn: str, criticality: str = "critical") -> dict[str, Any]:
    return {
        "name": name,
        "type": "postgres",
        "criticality": criticality,
        "timeout": "1s",
        "params": {"dsn": dsn},
    }


@pytest.fixture
async def running(pg: PostgresCluster, tmp_path: Path) -> AsyncIterator[RunningApp]:
    """A drwatch whose one check has passed once (run by hand: no scheduler to race)."""
    settings = settings_for(tmp_path, details_token=TOKEN)
    config = {"checks": [_pg_check("db", pg.dsn)]}
    async with running_app(config, settings, run_scheduler=False) as app:
        await app.runtime.scheduler.run_now("db")
        yield app


class _Downstream:
    """Stands in for the FastAPI app behind the fast path and records what reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope.get("path", scope["type"]))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"downstream"})


async def _call(
    running: RunningApp,
    path: str = "/health",
    *,
    method: str = "GET",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[_Downstream, list[dict[str, Any]]]:
    """One request through a HealthFastPath in front of a recording downstream app."""
    downstream = _Downstream()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": headers or [],
        "app": running.app,
    }
    await HealthFastPath(downstream)(scope, receive, send)
    return downstream, sent


async def test_get_health_is_answered_before_the_router(running: RunningApp) -> None:
    """GET /health: the pre-rendered public body, health+json, no-store, never downstream."""
    downstream, sent = await _call(running)
    assert downstream.paths == []
    start, body = sent
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/health+json"
    assert headers[b"cache-control"] == b"no-store"
    snapshot_body = public_health_body(running.runtime.monitor.snapshot)
    assert body["body"] == snapshot_body
    assert headers[b"content-length"] == str(len(snapshot_body)).encode()
    assert body["body"].startswith(b'{"status":"pass"')


async def test_head_health_has_the_get_headers_and_no_body(running: RunningApp) -> None:
    """HEAD /health: same status and headers as GET (Content-Length included), empty body."""
    _, get = await _call(running)
    downstream, head = await _call(running, method="HEAD")
    assert downstream.paths == []
    assert head[0] == get[0]
    assert head[1]["body"] == b""


@pytest.mark.parametrize(
    ("path", "method", "query", "headers"),
    [
        ("/health", "GET", b"verbose", []),
        ("/health", "GET", b"", [(b"authorization", f"Bearer {TOKEN}".encode())]),
        ("/health", "POST", b"", []),
        ("/health/live", "GET", b"", []),
        ("/health/db", "HEAD", b"", []),
        ("/healthz", "GET", b"", []),
        ("/metrics", "GET", b"", []),
    ],
    ids=["verbose", "details-token", "post", "live", "one-check", "other-name", "metrics"],
)
async def test_everything_else_passes_through(
    running: RunningApp, path: str, method: str, query: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """Queries, Authorization, other methods and other paths reach the app unchanged."""
    downstream, sent = await _call(running, path, method=method, query=query, headers=headers)
    assert downstream.paths == [path]
    assert sent[0]["status"] == 299


async def test_non_http_scopes_pass_through(running: RunningApp) -> None:
    """Lifespan and websocket scopes are not the fast path's business."""
    downstream = _Downstream()

    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: dict[str, Any]) -> None:
        pass

    await HealthFastPath(downstream)({"type": "lifespan"}, receive, send)
    assert downstream.paths == ["lifespan"]


async def _route(client: httpx.AsyncClient, method: str) -> httpx.Response:
    """The FastAPI route's answer to a public caller: a wrong token skips the fast path."""
    return await client.request(method, "/health", headers={"Authorization": "Bearer wrong"})


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_it_answers_what_the_route_answers(running: RunningApp, method: str) -> None:
    """Through the real app, the fast path and the route give the same status, headers, body."""
    fast = await running.client.request(method, "/health")
    route = await _route(running.client, method)
    assert fast.status_code == route.status_code == 200
    for header in ("content-type", "cache-control", "content-length"):
        assert fast.headers[header] == route.headers[header], header
    assert fast.content == route.content
    assert (fast.content == b"") is (method == "HEAD")


async def test_details_need_the_token(running: RunningApp) -> None:
    """Without the token the public body; with it (past the fast path) the checks."""
    public = await running.client.get("/health")
    detailed = await running.client.get("/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "checks" not in public.json()
    assert detailed.json()["checks"]["db"][0]["status"] == "pass"


async def test_verbose_goes_to_the_route(running: RunningApp) -> None:
    """?verbose is plain text from the route, not the fast path's JSON."""
    response = await running.client.get("/health?verbose")
    assert response.headers["content-type"].startswith("text/plain")
    assert "[+]db ok" in response.text


async def test_details_always_are_served_by_the_fast_path(
    pg: PostgresCluster, tmp_path: Path
) -> None:
    """health_details=always: the fast path serves the detailed body to everyone."""
    settings = settings_for(tmp_path, health_details="always")
    async with running_app(
        {"checks": [_pg_check("db", pg.dsn)]}, settings, run_scheduler=False
    ) as running:
        await running.runtime.scheduler.run_now("db")
        downstream, sent = await _call(running)
        assert downstream.paths == []
        assert sent[1]["body"] == detailed_health_body(running.runtime.monitor.snapshot)
        assert (await running.client.get("/health")).json()["checks"]["db"][0]["status"] == "pass"


async def test_a_critical_failure_is_503_on_get_and_head(
    pg: PostgresCluster, tmp_path: Path
) -> None:
    """A failing critical check: the fast path answers 503 to GET and HEAD, like the route."""
    down = _pg_check("down", f"postgresql://postgres@127.0.0.1:{refused_port()}/postgres")
    config = {"checks": [_pg_check("db", pg.dsn), {**down, "fall": 1}]}
    async with running_app(config, settings_for(tmp_path), run_scheduler=False) as running:
        for name in ("db", "down"):
            await running.runtime.scheduler.run_now(name)
        for method in ("GET", "HEAD"):
            downstream, sent = await _call(running, method=method)
            assert downstream.paths == []
            assert sent[0]["status"] == 503
            fast = await running.client.request(method, "/health")
            route = await _route(running.client, method)
            assert fast.status_code == route.status_code == 503
            assert fast.content == route.content
        body = (await running.client.get("/health")).json()
        assert body["status"] == "fail"
        assert "checks" not in body
