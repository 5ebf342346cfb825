"""/api/checks: every check's effective state, its last result and its transition history.

Outputs and details follow the same policy as ``/health`` (DRWATCH_HEALTH_DETAILS): callers who
may not see them get the public parts (name, type, criticality, status, since) and a
``details_hint`` saying how to see more.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from app.api.deps import STORE_TIMEOUT, Details, DetailsDep, RuntimeDep, SnapshotDep, StoreDep
from app.api.encoding import cached_response, json_bytes
from app.api.openapi import responses
from app.errors import StoreUnavailable
from app.units import rfc3339

router = APIRouter(prefix="/api", tags=["checks"])


def _with_hint(body: dict[str, Any], details: Details) -> dict[str, Any]:
    if not details.shown:
        body["details_hint"] = details.hint
    return body


@router.api_route("/checks", methods=["GET", "HEAD"], summary="All checks")
async def list_checks(request: Request, snapshot: SnapshotDep, details: DetailsDep) -> Response:
    # Rendered once per snapshot (a new one comes with each result) and policy, served as bytes.
    def render() -> bytes:
        body = {
            "status": snapshot.status.value,
            "generated_at": rfc3339(snapshot.generated_at),
            "checks": [state.as_dict(details=details.shown) for state in snapshot.checks.values()],
            "self_check": snapshot.self_check.as_dict(),
        }
        return json_bytes(_with_hint(body, details))

    key = "api_checks" if details.shown else "api_checks.public"
    return cached_response(request, snapshot.rendered, key, render)


@router.api_route(
    "/checks/{name}", methods=["GET", "HEAD"], summary="One check", responses=responses(404)
)
async def get_check(name: str, snapshot: SnapshotDep, details: DetailsDep) -> dict[str, Any]:
    state = snapshot.checks.get(name)
    if state is None:
        raise HTTPException(404, f"No check named {name!r}.")
    return _with_hint(state.as_dict(details=details.shown), details)


@router.api_route(
    "/checks/{name}/history",
    methods=["GET", "HEAD"],
    summary="State transitions of one check, newest first",
    responses=responses(404, 422, 503),
)
async def check_history(
    name: str,
    snapshot: SnapshotDep,
    store: StoreDep,
    details: DetailsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    if name not in snapshot.checks:
        raise HTTPException(404, f"No check named {name!r}.")
    try:
        rows = await asyncio.wait_for(store.transitions(name, limit=limit), STORE_TIMEOUT)
    except Exception as exc:
        raise StoreUnavailable(
            "The state store is unreachable; history is unavailable until it is back."
        ) from exc
    for row in rows:
        row["at"] = rfc3339(row["at"])
        if not details.shown:
            # The output recorded with a transition is as revealing as the live one.
            del row["output"]
    return _with_hint({"check": name, "transitions": rows}, details)


@router.api_route("/scheduler", methods=["GET", "HEAD"], summary="Scheduler liveness and lag")
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
