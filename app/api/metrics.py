"""/metrics in the Prometheus text format, served from bytes rendered once per change
(:class:`app.metrics.Exposition`), gzip-compressed when the scraper accepts it (Prometheus does).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import RuntimeDep
from app.api.encoding import accepts_gzip

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    if accepts_gzip(request):
        body = runtime.exposition.body(gzipped=True)
        headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return Response(body, headers=headers, media_type=CONTENT_TYPE_LATEST)
    body = runtime.exposition.body()
    return Response(body, headers={"Vary": "Accept-Encoding"}, media_type=CONTENT_TYPE_LATEST)
