"""A pure ASGI fast path for the public ``GET|HEAD /health``.

Route 53 and uptime monitors hit ``/health`` far more often than anything else, and only need the
pre-rendered public body. Answering them before FastAPI's routing and dependency resolution keeps
``/health`` close to the speed of a bare ASGI app. Requests with a query string or an
``Authorization`` header (verbose text, per-check details) go on to the FastAPI route, which gives
the same answers for the same inputs.
"""

from __future__ import annotations

from typing import Any

from app.api.render import detailed_health_body, public_health_body
from app.checks.base import Status

ASGIApp = Any
_HEADER_AUTHORIZATION = b"authorization"


class HealthFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != "/health"
            or scope["method"] not in ("GET", "HEAD")
            or scope["query_string"]
            or any(name == _HEADER_AUTHORIZATION for name, _ in scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        snapshot = runtime.monitor.snapshot
        always = runtime.settings.health_details == "always"
        body = detailed_health_body(snapshot) if always else public_health_body(snapshot)
        await send(
            {
                "type": "http.response.start",
                "status": 503 if snapshot.status is Status.FAIL else 200,
                "headers": [
                    (b"content-type", b"application/health+json"),
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )
