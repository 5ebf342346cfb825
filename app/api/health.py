"""/health for Route 53 and uptime monitors, /health/live and /health/ready for Kubernetes.

Bodies are application/health+json (draft-inadarei-api-health-check) with ``status`` first, so it
sits well within the first 5,120 bytes Route 53 reads for string matching. The status code carries
the verdict: 200 for pass and warn, 503 for fail. Public callers get the verdict only; per-check
details need the details token. Nothing here does I/O: everything is read from the snapshot.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from app.api.deps import RuntimeDep, SnapshotDep, details_hint, details_token, wants_details
from app.api.openapi import HEALTH_JSON, HealthJSON, health_responses, responses
from app.api.render import (
    detailed_health_body,
    health_check_entry,
    public_health_body,
    self_check_entry,
    verbose_text,
)
from app.checks.base import Status
from app.monitor import SELF_CHECK

router = APIRouter(tags=["health"], default_response_class=HealthJSON)

NO_STORE = {"Cache-Control": "no-store"}


def _code(status: Status | None) -> int:
    return 503 if status in (Status.FAIL, None) else 200


@router.api_route(
    "/health",
    methods=["GET", "HEAD"],
    summary="Overall verdict (?verbose: plain text)",
    responses=health_responses(text=True),
)
async def health(
    request: Request,
    runtime: RuntimeDep,
    snapshot: SnapshotDep,
    _token: Annotated[object, Depends(details_token)],
    verbose: Annotated[
        str | None, Query(description="Present (any value): plain text, one line per check.")
    ] = None,
) -> Response:
    details = wants_details(runtime, request.headers.get("authorization"))
    code = _code(snapshot.status)
    if verbose is not None:
        text = verbose_text(snapshot, outputs=details, hint=details_hint(runtime))
        return Response(text, code, NO_STORE, media_type="text/plain; charset=utf-8")
    body = detailed_health_body(snapshot) if details else public_health_body(snapshot)
    return Response(body, code, NO_STORE, media_type=HEALTH_JSON)


@router.api_route(
    "/health/live",
    methods=["GET", "HEAD"],
    summary="Process and scheduler alive",
    responses=health_responses(),
)
async def live(runtime: RuntimeDep) -> Response:
    alive = runtime.scheduler.alive
    body = {"status": "pass" if alive else "fail"}
    if not alive:
        body["output"] = "The scheduler has stopped ticking; results are no longer refreshed."
    return Response(json.dumps(body), 200 if alive else 503, NO_STORE, media_type=HEALTH_JSON)


@router.api_route(
    "/health/ready",
    methods=["GET", "HEAD"],
    summary="First round done",
    responses=health_responses(),
)
async def ready(snapshot: SnapshotDep) -> Response:
    body: dict[str, str] = {"status": "pass" if snapshot.ready else "fail"}
    if not snapshot.ready:
        body["output"] = "Waiting for the first result of every critical check."
    code = 200 if snapshot.ready else 503
    return Response(json.dumps(body), code, NO_STORE, media_type=HEALTH_JSON)


@router.api_route(
    "/health/{check}",
    methods=["GET", "HEAD"],
    summary="One check",
    responses={**health_responses(), **responses(404)},
)
async def check_health(
    check: str,
    request: Request,
    runtime: RuntimeDep,
    snapshot: SnapshotDep,
    _token: Annotated[object, Depends(details_token)],
) -> Response:
    if check == SELF_CHECK:
        # Never 503: a busy drwatch must not fail a region over.
        entry = self_check_entry(snapshot.self_check)
        own: dict[str, object] = {
            "status": entry["status"],
            "version": snapshot.version,
            "serviceId": snapshot.service_id,
        }
        if wants_details(runtime, request.headers.get("authorization")):
            own["checks"] = {SELF_CHECK: [entry]}
        return Response(json.dumps(own), 200, NO_STORE, media_type=HEALTH_JSON)
    state = snapshot.checks.get(check)
    if state is None:
        raise HTTPException(404, f"No check named {check!r}.")
    effective = state.effective
    body: dict[str, object] = {
        "status": effective.value if effective else Status.FAIL.value,
        "version": snapshot.version,
        "serviceId": snapshot.service_id,
    }
    if wants_details(runtime, request.headers.get("authorization")):
        body["checks"] = {state.name: [health_check_entry(state)]}
    return Response(json.dumps(body), _code(effective), NO_STORE, media_type=HEALTH_JSON)
