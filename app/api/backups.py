"""/api/backup-status for people and uptime monitors; push heartbeats from backup jobs.

``GET|HEAD /api/backup-status`` answers 503 when any backup source is outside its RPO or its
newest backup failed verification, so an uptime monitor can watch it with a keyword match on
``"status":"pass"``.

``POST /api/backups/{name}/ping|start|fail`` take a backup job's heartbeat for a check whose
type accepts pushes (``Check.accepts_pushes``), authenticated with that check's push token. The
event is written to the state store before the 2xx is sent, so an acknowledged ping is never
lost; while the store is down the endpoint answers 503 and the job should retry.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.api.deps import RuntimeDep
from app.backup_status import backup_status
from app.checks.base import Status
from app.errors import StoreUnavailable
from app.store.repository import HeartbeatEvent
from app.units import json_default, rfc3339

log = logging.getLogger("drwatch.api")
router = APIRouter(prefix="/api", tags=["backups"])

MAX_BODY_BYTES = 16 * 1024
STORE_TIMEOUT = 5.0
_KINDS = {"ping": "success", "start": "start", "fail": "fail"}


@router.api_route("/backup-status", methods=["GET", "HEAD"], summary="Backups against RPO/RTO")
async def get_backup_status(runtime: RuntimeDep) -> Response:
    report = backup_status(runtime.monitor.snapshot, runtime.drills.summaries())
    code = 503 if report["status"] == Status.FAIL.value else 200
    body = json.dumps(report, separators=(",", ":"), default=json_default)
    return Response(body, code, {"Cache-Control": "no-store"}, media_type="application/json")


class PingBody(BaseModel):
    """What a backup job may report with its ping (all optional)."""

    model_config = ConfigDict(extra="forbid")

    size_bytes: int | None = Field(None, ge=0)
    duration_seconds: float | None = Field(None, ge=0)
    location: str | None = Field(None, max_length=2048)
    checksum: str | None = Field(None, max_length=255)
    message: str | None = Field(None, max_length=2000)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise HTTPException(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes) -> PingBody:
    if not body.strip():
        return PingBody()
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "The body must be a JSON object.")
    try:
        return PingBody.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise HTTPException(422, f"Invalid heartbeat body: {errors}.") from None


@router.post("/backups/{name}/{action}", summary="Heartbeat from a backup job")
async def heartbeat(
    name: str, action: Literal["ping", "start", "fail"], request: Request, runtime: RuntimeDep
) -> dict[str, Any]:
    config = runtime.config.check(name)
    if config is None or not config.check_class.accepts_pushes:
        raise HTTPException(404, f"No heartbeat source named {name!r}.")
    expected = config.check_class.push_token(config.params) or ""
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    # An empty token would match an empty bearer: a source without one takes no pushes.
    if (
        not expected
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(given.strip().encode(), expected.encode())
    ):
        raise HTTPException(
            401,
            "Send the source's token as Authorization: Bearer <token>.",
            {"WWW-Authenticate": "Bearer"},
        )
    body = _parse(await _read_body(request))
    event = HeartbeatEvent(
        source=name,
        kind=_KINDS[action],
        at=datetime.now(UTC),
        size_bytes=body.size_bytes,
        duration_seconds=body.duration_seconds,
        location=body.location,
        checksum=body.checksum,
        message=body.message,
    )
    try:
        await asyncio.wait_for(runtime.store.record_heartbeat_event(event), STORE_TIMEOUT)
    except Exception as exc:
        log.error(
            "could not store a backup heartbeat; the job was told to retry",
            extra={"check": name, "kind": event.kind, "error": type(exc).__name__},
        )
        raise StoreUnavailable(
            "The state store is unavailable, so the heartbeat was not recorded; retry.",
            retry_after=10,
        ) from None
    # Evaluate the source now rather than at its next interval, so the status follows the ping.
    if name in runtime.scheduler.checks:
        runtime.spawn(runtime.scheduler.run_now(name), f"heartbeat:{name}")
    return {"source": name, "kind": event.kind, "at": rfc3339(event.at), "recorded": True}
