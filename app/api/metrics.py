"""/metrics in the Prometheus text format, served from bytes rendered once per change
(:class:`app.metrics.Exposition`), gzip-compressed when the scraper accepts it (Prometheus does).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.deps import RuntimeDep
from app.api.encoding import accepts_gzip
from app.api.openapi import PrometheusText

router = APIRouter(tags=["metrics"])


@router.api_route(
    "/metrics",
    methods=["GET", "HEAD"],
    summary="Prometheus metrics",
    response_class=PrometheusText,
    responses={200: {"content": {PrometheusText.media_type: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    # Rendered once per change (see app.metrics.Exposition) and served as bytes.
    if accepts_gzip(request):
        body = runtime.exposition.body(gzipped=True)
        headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return PrometheusText(body, headers=headers)
    return PrometheusText(runtime.exposition.body(), headers={"Vary": "Accept-Encoding"})
