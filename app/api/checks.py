"""/api/checks: every check's effective state, its last result and its transition history."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from app.api.deps import RuntimeDep, SnapshotDep, StoreDep
from app.api.encoding import cached_response, json_bytes
from app.errors import StoreUnavailable

router = APIRouter(prefix="/api", tags=["checks"])


@router.get("/checks", summary="All checks")
async def list_checks(request: Request, snapshot: SnapshotDep) -> Response:
    # Rendered once per snapshot (a new one comes with each result) and served as bytes.
    def render() -> bytes:
        return json_bytes(
            {
                "status": snapshot.status.value,
                "generated_at": snapshot.generated_at.isoformat(),
                "checks": [state.as_dict() for state in snapshot.checks.values()],
                "self_check": snapshot.self_check.as_dict(),
            }
        )

    return cached_response(request, snapshot.rendered, "api_checks", render)


@router.get("/checks/{name}", summary="One check")
async def get_check(name: str, snapshot: SnapshotDep) -> dict[str, Any]:
    state = snapshot.checks.get(name)
    if state is None:
        raise HTTPException(404, f"No check named {name!r}.")
    return state.as_dict()


@router.get("/checks/{name}/history", summary="State transitions of one check, newest first")
async def check_history(
    name: str,
    snapshot: SnapshotDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    if name not in snapshot.checks:
        raise HTTPException(404, f"No check named {name!r}.")
    try:
        rows = await store.transitions(name, limit=limit)
    except Exception as exc:
        raise StoreUnavailable(
            "The state store is unreachable; history is unavailable until it is back."
        ) from exc
    for row in rows:
        row["at"] = row["at"].isoformat()
    return {"check": name, "transitions": rows}


@router.get("/scheduler", summary="Scheduler liveness and lag")
async def scheduler_status(runtime: RuntimeDep) -> dict[str, Any]:
    scheduler = runtime.scheduler
    return {
        "alive": scheduler.alive,
        "jobs": len(scheduler.checks),
        "lag_seconds": scheduler.lag_stats(),
        "overruns": dict(scheduler.overruns),
        "engine": asdict(scheduler.engine.load()),
        "store": {
            "healthy": runtime.writer.healthy,
            "pending_writes": runtime.writer.pending,
            "write_failures": runtime.writer.failures_total,
        },
    }
