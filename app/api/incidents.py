"""/api/incidents: service and check incidents from the shared history, newest first.

Answered from the history cache (memory; refreshed from the state store in the background), so
every replica gives the same answer about the past and a store outage only makes it ``stale``.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BeforeValidator

from app.api.deps import RuntimeDep
from app.api.openapi import responses
from app.history.incidents import select_incidents
from app.units import parse_timestamp

router = APIRouter(prefix="/api", tags=["history"])

Scope = Literal["self", "all"]


def _rfc3339_text(value: object) -> object:
    # pydantic would also read "0.5" as a Unix time; the documented format is date-time only.
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 time, such as 2026-11-28T13:00:00Z")
    return value


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
RFC3339 = Annotated[datetime, BeforeValidator(_rfc3339_text)]


@router.get(
    "/incidents",
    summary="Incidents from the shared history, newest first",
    responses=responses(422),
)
async def list_incidents(
    runtime: RuntimeDep,
    state: Annotated[Literal["open", "resolved"] | None, Query()] = None,
    check: Annotated[str | None, Query(max_length=63)] = None,
    since: Annotated[RFC3339 | None, Query(description="RFC 3339 time")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    scope: Annotated[Scope, Query(description="self: this replica; all: every replica")] = "self",
) -> Response:
    # A time without an offset is read as UTC, like every time drwatch writes.
    moment = parse_timestamp(since) if since is not None else None
    since_at = moment.timestamp() if moment is not None else None
    history = runtime.history
    view = history.view(scope)
    selected = select_incidents(
        view.incidents, state=state, check=check, since=since_at, limit=limit
    )
    now = time.time()
    head = {"service_id": history.service_id if scope == "self" else "*", "scope": scope}
    head.update(history.freshness())
    # Rendered by hand: resolved incidents keep their JSON, so a request joins bytes instead of
    # encoding a hundred dicts again.
    body = b"".join(
        (
            json.dumps(head, separators=(",", ":")).encode()[:-1],
            b',"incidents":[',
            b",".join(incident.json(now) for incident in selected),
            b"]}",
        )
    )
    return Response(body, media_type="application/json")
