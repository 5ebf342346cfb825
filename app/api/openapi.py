"""What the OpenAPI document says beyond what FastAPI infers: error bodies, media types, tokens.

Routes list the error codes they can answer with :func:`responses`, so a schema-driven client
(and the schemathesis run in tests/security/) sees every status and body the API really sends.
FastAPI documents its own validation error shape for every route with parameters;
:func:`document_validation_errors` replaces it with the shape drwatch sends
(``{"detail": "invalid request", "errors": [{"loc", "message"}]}``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI, Response
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

HEALTH_JSON = "application/health+json"


class HealthJSON(Response):
    """``application/health+json`` (draft-inadarei-api-health-check)."""

    media_type = HEALTH_JSON


class PrometheusText(Response):
    """The Prometheus text exposition format."""

    media_type = CONTENT_TYPE_LATEST


class ErrorBody(BaseModel):
    """Every error but a validation error: one sentence saying what is wrong."""

    detail: str


class InvalidField(BaseModel):
    loc: str
    message: str


class ValidationErrorBody(BaseModel):
    """A request that does not validate: which input was wrong (the input itself is not echoed)."""

    detail: Literal["invalid request"]
    errors: list[InvalidField]


class HealthBody(BaseModel):
    """The /health verdict; ``checks`` only with the details token (or details: always)."""

    status: Literal["pass", "warn", "fail"]
    version: str | None = None
    serviceId: str | None = None  # the name the health+json draft gives it
    description: str | None = None
    output: str | None = None
    checks: dict[str, list[dict[str, Any]]] | None = None


_ERRORS = {
    401: "No token, or not one this endpoint accepts.",
    403: "The token is valid but not allowed here, or the endpoint is disabled.",
    404: "No such check, drill or heartbeat source.",
    409: "Already running (here or on another replica).",
    413: "The body is larger than the endpoint accepts.",
    503: "The state store is unavailable; retry (see Retry-After when sent).",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses ``codes`` (422 is documented for every route)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if code == 422:
            documented[code] = {"model": ValidationErrorBody, "description": "Invalid input."}
        else:
            documented[code] = {"model": ErrorBody, "description": _ERRORS[code]}
    return documented


def health_responses(*, text: bool = False) -> dict[int | str, dict[str, Any]]:
    """200 and 503 of a health endpoint, both application/health+json (or plain text)."""
    content: dict[str, Any] = {HEALTH_JSON: {"schema": {"$ref": "#/components/schemas/HealthBody"}}}
    if text:
        content["text/plain"] = {"schema": {"type": "string"}}
    return {
        200: {"description": "pass or warn", "content": content, "model": HealthBody},
        503: {"description": "fail (or not known yet)", "content": content},
    }


def document_validation_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` document drwatch's 422 body instead of FastAPI's default."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        for model in (ValidationErrorBody, ErrorBody):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components.setdefault(model.__name__, model_schema)
        reference = {"$ref": "#/components/schemas/ValidationErrorBody"}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                answer = operation.get("responses", {}).get("422")
                if answer is not None:
                    answer["description"] = "Invalid input."
                    answer["content"] = {"application/json": {"schema": reference}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
