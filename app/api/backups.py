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
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import DataError, IntegrityError

from app.api.deps import STORE_TIMEOUT, DetailsDep, RuntimeDep, push_token
from app.api.openapi import responses
from app.backup_status import backup_status
from app.checks.base import Status
from app.errors import StoreUnavailable
from app.runtime import Runtime
from app.store.repository import HeartbeatEvent
from app.units import json_default, rfc3339

log = logging.getLogger("drwatch.api")
router = APIRouter(prefix="/api", tags=["backups"])

MAX_BODY_BYTES = 16 * 1024
_KINDS = {"ping": "success", "start": "start", "fail": "fail"}


@router.api_route(
    "/backup-status",
    methods=["GET", "HEAD"],
    summary="Backups against RPO/RTO",
    responses={
        200: {"description": "Every source within its RPO and verified."},
        503: {
            "description": "A source is outside its RPO or failed verification (same body).",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
async def get_backup_status(runtime: RuntimeDep, details: DetailsDep) -> Response:
    report = backup_status(
        runtime.monitor.snapshot, runtime.drills.summaries(), outputs=details.shown
    )
    if not details.shown:
        report["details_hint"] = details.hint
    code = 503 if report["status"] == Status.FAIL.value else 200
    body = json.dumps(report, separators=(",", ":"), default=json_default)
    return Response(body, code, {"Cache-Control": "no-store"}, media_type="application/json")


# The largest value a signed 64-bit column holds; anything above it the store cannot keep.
MAX_SIZE_BYTES = 2**63 - 1
# Ten years: a duration beyond it is a bug in the job, not a backup.
MAX_DURATION_SECONDS = 10 * 365 * 86400.0
# PostgreSQL text cannot hold a NUL character; rejecting it here keeps the answer the same on
# every store.
_NO_NUL = r"^[^\x00]*$"


class PingBody(BaseModel):
    """What a backup job may report with its ping (all optional).

    Numbers must be JSON numbers (not strings or booleans), finite and within what the state
    store keeps; strings must not contain NUL. Anything else is a 422 before the store is asked,
    so a 503 always means the store itself is unavailable.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    size_bytes: int | None = Field(
        None, ge=0, le=MAX_SIZE_BYTES, description="Size of the backup in bytes."
    )
    duration_seconds: float | None = Field(
        None, ge=0, le=MAX_DURATION_SECONDS, description="How long the backup job ran."
    )
    location: str | None = Field(
        None, max_length=2048, pattern=_NO_NUL, description="Where the backup was written."
    )
    checksum: str | None = Field(None, max_length=255, pattern=_NO_NUL)
    message: str | None = Field(
        None, max_length=2000, pattern=_NO_NUL, description="The job's own words (on /fail)."
    )

    @field_validator("size_bytes", mode="before")
    @classmethod
    def _whole_number(cls, value: object) -> object:
        # JSON counts 5226.0 as an integer, and some encoders write sizes that way; a fraction,
        # an infinity or a boolean still fails the strict check.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


# The route reads the body itself (to bound its size before parsing), so FastAPI cannot infer
# it; documented here so a schema-driven client can call the endpoint.
_REQUEST_BODY = {
    "required": False,
    "content": {"application/json": {"schema": PingBody.model_json_schema()}},
}


def _invalid(message: str, loc: tuple[str | int, ...] = ("body",)) -> RequestValidationError:
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


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
        raise _invalid("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _invalid("the body must be a JSON object")
    try:
        return PingBody.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
        ) from None


def _authorized(runtime: Runtime, name: str, authorization: str | None) -> bool:
    """Whether ``authorization`` carries the push token of a source called ``name``.

    An unknown name, a check that takes no pushes and a wrong token look the same from outside
    (and take the same comparison), so the answer does not tell which sources exist.
    """
    config = runtime.config.check(name)
    known = config is not None and config.check_class.accepts_pushes
    expected = (config.check_class.push_token(config.params) if config and known else None) or ""
    scheme, _, given = (authorization or "").partition(" ")
    matches = hmac.compare_digest(given.strip().encode(), (expected or _NO_TOKEN).encode())
    # An empty token would match an empty bearer: a source without one takes no pushes.
    return known and bool(expected) and scheme.lower() == "bearer" and matches


_NO_TOKEN = "\x00no push token\x00"


@router.post(
    "/backups/{name}/{action}",
    summary="Heartbeat from a backup job",
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses=responses(401, 413, 422, 503),
)
async def heartbeat(
    name: str,
    action: Literal["ping", "start", "fail"],
    request: Request,
    runtime: RuntimeDep,
    _token: Annotated[object, Depends(push_token)],
) -> dict[str, Any]:
    if not _authorized(runtime, name, request.headers.get("authorization")):
        raise HTTPException(
            401,
            "Send the token of a heartbeat source as Authorization: Bearer <token>; the name or "
            "the token is not known.",
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
    except (DataError, IntegrityError):
        # The store refused a value (validation above should have caught it): the same input
        # would be refused again, so a retry cannot help and this is no outage.
        raise _invalid("the state store cannot keep a value of this heartbeat") from None
    except Exception as exc:
        runtime.writer.note_direct_write(exc)
        log.error(
            "could not store a backup heartbeat; the job was told to retry",
            extra={"check": name, "kind": event.kind, "error": type(exc).__name__},
        )
        raise StoreUnavailable(
            "The state store is unavailable, so the heartbeat was not recorded; retry.",
            retry_after=10,
        ) from None
    runtime.writer.note_direct_write(None)
    # Evaluate the source now rather than at its next interval, so the status follows the ping.
    if name in runtime.scheduler.checks:
        runtime.spawn(runtime.scheduler.run_now(name), f"heartbeat:{name}")
    return {"source": name, "kind": event.kind, "at": rfc3339(event.at), "recorded": True}
