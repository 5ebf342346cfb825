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
    400: "The body cannot be read (it is not UTF-8 JSON).",
    401: "No token, or not one this endpoint accepts.",
    403: "The token is valid but not allowed here, or the endpoint is disabled.",
    404: "No such check, drill or heartbeat source.",
    409: "Already running (here or on another replica).",
    413: "The body is larger than the endpoint accepts.",
    503: "The state store is unavailable; retry (see Retry-After when sent).",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses ``codes``: JSON bodies, whatever the route's media type."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if code == 422:
            schema, description = _ref(ValidationErrorBody), "Invalid input."
        else:
            schema, description = _ref(ErrorBody), _ERRORS[code]
        documented[code] = {
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    return documented


def health_responses(*, text: bool = False) -> dict[int | str, dict[str, Any]]:
    """200 and 503 of a health endpoint, both application/health+json (or plain text)."""
    content: dict[str, Any] = {HEALTH_JSON: {"schema": _ref(HealthBody)}}
    if text:
        content["text/plain"] = {"schema": {"type": "string"}}
    return {
        200: {"description": "pass or warn", "content": content},
        503: {"description": "fail (or not known yet)", "content": content},
    }


# Tokens that unlock more but are not required: the operation also answers without one.
_OPTIONAL_TOKENS = {"detailsToken"}


def _complete(operation: dict[str, Any]) -> None:
    answers = operation.get("responses", {})
    if "422" in answers:
        answers["422"] = responses(422)[422]
    for answer in answers.values():
        for media in answer.get("content", {}).values():
            # FastAPI adds "type": "string" next to a reference for non-JSON response classes.
            if "$ref" in media.get("schema", {}):
                media["schema"] = {"$ref": media["schema"]["$ref"]}
    security = operation.get("security", [])
    if any(set(requirement) <= _OPTIONAL_TOKENS for requirement in security):
        # An empty requirement: calling without a token is allowed (and gets the public parts).
        operation["security"] = [{}, *security]


def document_validation_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` true to the API: drwatch's 422 body instead of FastAPI's
    default, optional tokens as optional, one schema per media type.
    """

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
        for model in (ValidationErrorBody, ErrorBody, HealthBody):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components.setdefault(model.__name__, model_schema)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                _complete(operation)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
