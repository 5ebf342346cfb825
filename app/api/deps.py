"""Dependency aliases for routes: the runtime built by the lifespan and what hangs off it."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBearer

from app.monitor import Snapshot
from app.runtime import Runtime
from app.store.repository import Store


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_snapshot(request: Request) -> Snapshot:
    runtime: Runtime = request.app.state.runtime
    return runtime.monitor.snapshot


async def get_store(request: Request) -> Store:
    runtime: Runtime = request.app.state.runtime
    return runtime.store


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SnapshotDep = Annotated[Snapshot, Depends(get_snapshot)]
StoreDep = Annotated[Store, Depends(get_store)]


# The longest a request waits for the state store (a hung store must not hang the API): then
# the route answers 503 with what it could not get.
STORE_TIMEOUT = 5.0


def bearer_matches(authorization: str | None, expected: str | None) -> bool:
    """Constant-time check of an ``Authorization: Bearer <token>`` header."""
    if not expected or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def wants_details(runtime: Runtime, authorization: str | None) -> bool:
    mode = runtime.settings.health_details
    if mode == "always":
        return True
    if mode == "never":
        return False
    token = runtime.settings.details_token
    return bearer_matches(authorization, token.get_secret_value() if token else None)


def details_hint(runtime: Runtime) -> str:
    """How a caller who was not shown outputs and details can see them (a sentence)."""
    mode = runtime.settings.health_details
    if mode == "never":
        return (
            "Outputs are hidden (DRWATCH_HEALTH_DETAILS=never); run `drwatch check` where "
            "drwatch runs to see them."
        )
    if runtime.settings.details_token is None:
        return (
            "Outputs are hidden: set DRWATCH_DETAILS_TOKEN and send it as "
            "'Authorization: Bearer <token>', or set DRWATCH_HEALTH_DETAILS=always on a "
            "private network."
        )
    return "Outputs are hidden: send 'Authorization: Bearer <details token>' to see them."


@dataclass(frozen=True, slots=True)
class Details:
    """Whether this request may see outputs and details, and if not, how it could."""

    shown: bool
    hint: str


# Declared so the OpenAPI document says which endpoints read a bearer token; the token itself is
# compared by wants_details() and require_admin(), which give their own answers to a bad one.
details_token = HTTPBearer(
    auto_error=False,
    scheme_name="detailsToken",
    description="The details token (DRWATCH_DETAILS_TOKEN): shows outputs and details.",
)
push_token = HTTPBearer(
    auto_error=False,
    scheme_name="pushToken",
    description="The push token of one heartbeat source (its `token` parameter).",
)
admin_token = HTTPBearer(
    auto_error=False,
    scheme_name="adminToken",
    description="The admin token (DRWATCH_ADMIN_TOKEN): starts restore drills.",
)


async def get_details(
    request: Request, _token: Annotated[object, Depends(details_token)]
) -> Details:
    """The details policy (DRWATCH_HEALTH_DETAILS) applied to this request.

    Every endpoint that shows check outputs or details follows it, so an output hidden from
    ``/health`` is hidden from ``/api/checks`` too.
    """
    runtime: Runtime = request.app.state.runtime
    shown = wants_details(runtime, request.headers.get("authorization"))
    return Details(shown, "" if shown else details_hint(runtime))


DetailsDep = Annotated[Details, Depends(get_details)]


async def require_admin(request: Request, _token: Annotated[object, Depends(admin_token)]) -> None:
    """401 without a bearer token, 403 with a wrong one, 403 when no admin token is set."""
    runtime: Runtime = request.app.state.runtime
    token = runtime.settings.admin_token
    authorization = request.headers.get("authorization")
    if not authorization:
        raise HTTPException(
            401, "Send Authorization: Bearer <admin token>.", {"WWW-Authenticate": "Bearer"}
        )
    if token is None:
        raise HTTPException(403, "Admin endpoints are disabled: DRWATCH_ADMIN_TOKEN is not set.")
    if not bearer_matches(authorization, token.get_secret_value()):
        raise HTTPException(403, "The admin token is not valid.")


AdminDep = Annotated[None, Depends(require_admin)]
