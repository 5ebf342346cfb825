"""/api/maintenance: open and upcoming maintenance windows; ad hoc ones started and ended here.

Listing reads memory (configured windows, and the ad hoc ones as of the last background refresh
from the store). Starting and ending write to the state store, so every replica honours the
window within its refresh interval; the replica that handled the request applies it at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from app.api.deps import AdminDep, StoreDep
from app.api.openapi import responses
from app.errors import MaintenanceConflict, StoreUnavailable, UnknownMaintenanceWindow
from app.history.maintenance import UPCOMING, MaintenanceSchedule, WindowRequest
from app.history.windows import Window
from app.units import rfc3339

router = APIRouter(prefix="/api/maintenance", tags=["maintenance"])


async def get_maintenance(request: Request) -> MaintenanceSchedule:
    schedule: MaintenanceSchedule = request.app.state.runtime.maintenance
    return schedule


MaintenanceDep = Annotated[MaintenanceSchedule, Depends(get_maintenance)]


def window_body(window: Window, now: datetime) -> dict[str, Any]:
    """An ad hoc window as the API answers with it."""
    assert window.start is not None and window.end is not None
    body = window.describe()
    body.update(
        patterns=list(window.patterns) if window.patterns is not None else None,
        start=rfc3339(window.start),
        end=rfc3339(window.end),
        duration_seconds=(window.end - window.start).total_seconds(),
        active=window.start <= now < window.end,
    )
    return body


@router.get("", summary="Open and upcoming maintenance windows (next 7 days)")
async def list_windows(schedule: MaintenanceDep) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "generated_at": rfc3339(now),
        "horizon_seconds": UPCOMING.total_seconds(),
        "windows": schedule.listing(now),
    }


@router.post(
    "",
    status_code=201,
    summary="Start an ad hoc maintenance window (admin token)",
    responses=responses(400, 401, 403, 409, 422, 503),
)
async def start_window(
    body: WindowRequest, _admin: AdminDep, schedule: MaintenanceDep, store: StoreDep
) -> Any:
    now = datetime.now(UTC)
    problems = schedule.problems(body, now)
    if problems:
        errors = [{"loc": f"body.{where}", "message": message} for where, message in problems]
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)
    try:
        window = await schedule.start(store, body, now=now)
    except MaintenanceConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except Exception as exc:
        raise StoreUnavailable(
            "The state store is unreachable, so the window cannot be shared with the other "
            "replicas; it was not started. Retry when the store is back.",
            retry_after=10,
        ) from exc
    return window_body(window, now)


@router.delete(
    "/{name}",
    summary="End an ad hoc maintenance window now (admin token)",
    responses=responses(401, 403, 404, 409, 503),
)
async def end_window(
    name: str, _admin: AdminDep, schedule: MaintenanceDep, store: StoreDep
) -> dict[str, Any]:
    now = datetime.now(UTC)
    try:
        window = await schedule.end(store, name, now=now)
    except UnknownMaintenanceWindow as exc:
        raise HTTPException(404, str(exc)) from None
    except MaintenanceConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except Exception as exc:
        raise StoreUnavailable(
            "The state store is unreachable, so the window cannot be ended for every replica; "
            "it is still open. Retry when the store is back.",
            retry_after=10,
        ) from exc
    return window_body(window, now)
