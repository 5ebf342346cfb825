"""/api/drills: restore drill history, and starting a drill by hand (admin token)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from app.api.deps import STORE_TIMEOUT, AdminDep, StoreDep
from app.api.openapi import responses
from app.drills.service import DrillService
from app.errors import DrillBusy, StoreUnavailable
from app.units import rfc3339

router = APIRouter(prefix="/api/drills", tags=["drills"])


async def get_drills(request: Request) -> DrillService:
    """The runtime's DrillService (it has no specs when no drill is configured)."""
    service: DrillService = request.app.state.runtime.drills
    return service


DrillsDep = Annotated[DrillService, Depends(get_drills)]


def _known(drills: DrillService, name: str) -> DrillService:
    if name not in drills.specs:
        raise HTTPException(404, f"No restore drill named {name!r}.")
    return drills


@router.get(
    "/{name}/runs",
    summary="Runs of one restore drill, newest first",
    responses=responses(404, 422, 503),
)
async def drill_runs(
    name: str,
    drills: DrillsDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    service = _known(drills, name)
    try:
        rows = await asyncio.wait_for(store.drill_runs(name, limit=limit), STORE_TIMEOUT)
    except Exception as exc:
        raise StoreUnavailable(
            "The state store is unreachable; drill history is unavailable until it is back."
        ) from exc
    runs = [
        {
            key: rfc3339(value) if isinstance(value, datetime) else value
            for key, value in row.items()
        }
        for row in rows
    ]
    spec = service.specs[name]
    return {
        "drill": name,
        "source": spec.source,
        "schedule": spec.schedule,
        "rto_seconds": spec.rto,
        "running": service.running.get(name),
        "runs": runs,
    }


@router.post(
    "/{name}/run",
    status_code=202,
    summary="Start a restore drill now (admin token)",
    responses=responses(401, 403, 404, 409, 503),
)
async def start_drill(name: str, _admin: AdminDep, drills: DrillsDep) -> dict[str, Any]:
    service = _known(drills, name)
    try:
        run_id = await service.start(name)
    except DrillBusy:
        raise HTTPException(409, f"The restore drill {name!r} is already running.") from None
    except Exception as exc:
        raise StoreUnavailable(
            "The state store is unreachable, so the drill cannot take its lease; retry later."
        ) from exc
    return {"run_id": run_id, "drill": name, "status": "running"}
