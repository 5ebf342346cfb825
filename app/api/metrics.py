"""/metrics in the Prometheus text format, rendered from the snapshot at scrape time."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import generate_latest

from app.api.deps import RuntimeDep
from app.api.openapi import PrometheusText

router = APIRouter(tags=["metrics"])


@router.api_route(
    "/metrics",
    methods=["GET", "HEAD"],
    summary="Prometheus metrics",
    response_class=PrometheusText,
    responses={200: {"content": {PrometheusText.media_type: {"schema": {"type": "string"}}}}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    return PrometheusText(generate_latest(runtime.registry))
