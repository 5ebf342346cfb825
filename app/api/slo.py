"""/api/slo: availability against the objective, error budget, burn rates, MTTR and time to
detect, over 1, 7, 30 and 90 days; from the history cache (memory only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import RuntimeDep
from app.api.incidents import Scope

router = APIRouter(prefix="/api", tags=["history"])


@router.get("/slo", summary="Availability SLO figures from the shared history")
async def get_slo(
    runtime: RuntimeDep,
    scope: Annotated[Scope, Query(description="self: this replica; all: every replica")] = "self",
) -> Response:
    return Response(runtime.history.slo_json(scope), media_type="application/json")
