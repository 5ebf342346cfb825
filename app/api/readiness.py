"""/api/dr-readiness: could the standby region take over now, and what would it cost?

``GET|HEAD /api/dr-readiness`` answers 200 while the standby is ready and 503 while something
blocks it, so an uptime monitor can watch it like ``/api/backup-status``; 404 when no
prerequisite is configured. The body is :func:`app.readiness.dr_readiness`.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Response

from app.api.deps import RuntimeDep
from app.api.openapi import responses
from app.readiness import dr_readiness, drill_runs
from app.units import json_default

router = APIRouter(prefix="/api", tags=["readiness"])


@router.api_route(
    "/dr-readiness",
    methods=["GET", "HEAD"],
    summary="Readiness of the standby region",
    responses={
        503: {"description": "The standby region is not ready: the body lists the blockers."},
        **responses(404),
    },
)
async def get_dr_readiness(runtime: RuntimeDep) -> Response:
    report = dr_readiness(runtime.monitor.snapshot, runtime.config, drill_runs(runtime.drills))
    if report is None:
        raise HTTPException(
            404,
            "No standby-region prerequisites are configured: list checks under "
            "dr_readiness: {checks: [...]} or label them region: dr.",
        )
    body = json.dumps(report, separators=(",", ":"), default=json_default)
    code = 200 if report["ready"] else 503
    return Response(body, code, {"Cache-Control": "no-store"}, media_type="application/json")
