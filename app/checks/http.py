"""``http``: one HTTP request to an endpoint, judged by status, body, JSON value and latency."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from app.checks import base
from app.checks._http import HttpClient, HttpResponse, shown_url
from app.checks.base import Check, CheckContext, CheckFailed, Result
from app.units import Duration, format_duration

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class BasicAuth(base.Params):
    username: str = Field(description="User name sent with HTTP basic authentication.")
    password: SecretStr = Field(description="Password sent with HTTP basic authentication.")


def _parse_status_ranges(value: object) -> tuple[tuple[int, int], ...]:
    items: list[object]
    if isinstance(value, str):
        items = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, int):
        items = [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError("expected status codes such as [200, 204] or ['200-299', 301]")
    ranges: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"{item!r} is not a status code")
        if isinstance(item, int):
            low = high = item
        elif isinstance(item, str) and re.fullmatch(r"\s*\d{3}\s*(-\s*\d{3}\s*)?", item):
            low_text, _, high_text = item.partition("-")
            low, high = int(low_text), int(high_text or low_text)
        else:
            raise ValueError(f"{item!r} is not a status code or a range like 200-299")
        if not (100 <= low <= high <= 599):
            raise ValueError(f"{item!r} is not a status code range between 100 and 599")
        ranges.append((low, high))
    if not ranges:
        raise ValueError("at least one expected status code is required")
    return tuple(ranges)


def _format_ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_json_path(path: str) -> tuple[str | int, ...]:
    """``$.items[0].state`` / ``items.0.state`` -> ``("items", 0, "state")``."""
    text = path.strip()
    text = text[1:] if text.startswith("$") else text
    parts: list[str | int] = []
    position = 0
    for match in _PATH_PART.finditer(text):
        gap = text[position : match.start()]
        if gap not in ("", "."):
            raise ValueError(f"{path!r} is not a JSON path like $.status or $.items[0].state")
        position = match.end()
        key, index = match.groups()
        if index is not None:
            parts.append(int(index))
        elif key.isdigit():
            parts.append(int(key))
        else:
            parts.append(key)
    if text[position:] not in ("", ".") or not parts:
        raise ValueError(f"{path!r} is not a JSON path like $.status or $.items[0].state")
    return tuple(parts)


_MISSING = object()


def json_lookup(document: Any, path: tuple[str | int, ...]) -> Any:
    node = document
    for part in path:
        if isinstance(part, int) and isinstance(node, list) and -len(node) <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and str(part) in node:
            node = node[str(part)]
        else:
            return _MISSING
    return node


class HttpCheck(Check["HttpCheck.Params"]):
    """Sends one request and judges the answer.

    Passes when the status is expected and every configured body condition holds; warns when the
    answer is slower than ``latency_warn``. Defaults to ``critical`` because it usually guards the
    application's own endpoints, whose failure in this region is what failover is for.
    """

    class Params(base.Params):
        url: str = Field(description="The http:// or https:// URL to request.")
        method: str = Field("GET", description="HTTP method: GET, HEAD, POST, PUT, PATCH, ...")
        headers: dict[str, str] = Field(
            default_factory=dict, description="Request headers to send (not secrets: use auth)."
        )
        bearer_token: SecretStr | None = Field(
            None, description="Sent as Authorization: Bearer <token>; not with basic_auth."
        )
        basic_auth: BasicAuth | None = Field(
            None, description="{username, password} for HTTP basic authentication."
        )
        body: str | None = Field(None, description="Request body to send.")
        expected_status: tuple[tuple[int, int], ...] = Field(
            default=((200, 399),),
            validate_default=False,
            description=(
                "Status codes that pass, e.g. [200, 204] or ['200-299', 301]; default: 200-399."
            ),
        )
        body_contains: str | None = Field(
            None, description="Fail unless the response body contains this text."
        )
        body_regex: str | None = Field(
            None, description="Fail unless the response body matches this regular expression."
        )
        json_path: str | None = Field(
            None,
            description="Path of a value in a JSON response, e.g. $.status or $.items[0].state.",
        )
        json_equals: Any = Field(
            None, description="Fail unless the value at json_path equals this (needs json_path)."
        )
        latency_warn: Duration | None = Field(
            None, description="Warn when the answer takes longer than this."
        )
        follow_redirects: bool = Field(True, description="Follow redirects to their target.")
        verify_tls: bool = Field(
            True, description="Verify the server's certificate and host name (https:// only)."
        )
        ca_file: Path | None = Field(
            None, description="PEM bundle to trust instead of the system's CAs."
        )

        @field_validator("url")
        @classmethod
        def _http_url(cls, value: str) -> str:
            try:
                url = urlsplit(value)
                url.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError as exc:
                raise ValueError(f"not a URL: {exc}") from None
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError("expected an http:// or https:// URL with a host")
            return value

        @field_validator("method")
        @classmethod
        def _known_method(cls, value: str) -> str:
            method = value.upper()
            if method not in _METHODS:
                raise ValueError(f"expected one of {', '.join(_METHODS)}")
            return method

        @field_validator("expected_status", mode="before")
        @classmethod
        def _status_ranges(cls, value: object) -> tuple[tuple[int, int], ...]:
            return _parse_status_ranges(value)

        @field_validator("body_regex")
        @classmethod
        def _compiles(cls, value: str | None) -> str | None:
            if value is not None:
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ValueError(f"not a valid regular expression: {exc}") from None
            return value

        @field_validator("json_path")
        @classmethod
        def _json_path(cls, value: str | None) -> str | None:
            if value is not None:
                parse_json_path(value)
            return value

        @model_validator(mode="after")
        def _consistent(self) -> HttpCheck.Params:
            if "json_equals" in self.model_fields_set and self.json_path is None:
                raise ValueError("json_equals needs json_path")
            if self.bearer_token is not None and self.basic_auth is not None:
                raise ValueError("give either bearer_token or basic_auth, not both")
            return self

    default_criticality: ClassVar[base.Criticality] = "critical"
    gauges: ClassVar[Mapping[str, str]] = {
        "tls_cert_expiry_timestamp_seconds": "drwatch_tls_cert_expiry_timestamp_seconds"
    }

    def __init__(
        self,
        name: str,
        params: HttpCheck.Params,
        *,
        timeout: float,
        context: CheckContext | None = None,
    ) -> None:
        super().__init__(name, params, timeout=timeout, context=context)
        self._client: HttpClient | None = None
        self._regex = re.compile(params.body_regex) if params.body_regex else None
        self._json_path = parse_json_path(params.json_path) if params.json_path else None
        self._shown = shown_url(params.url)

    def _http(self) -> HttpClient:
        if self._client is None:
            p = self.params
            headers = dict(p.headers)
            auth: tuple[str, str] | None = None
            if p.bearer_token is not None:
                headers["Authorization"] = f"Bearer {p.bearer_token.get_secret_value()}"
            if p.basic_auth is not None:
                auth = (p.basic_auth.username, p.basic_auth.password.get_secret_value())
            self._client = HttpClient(
                self._shown,
                timeout=self.timeout,
                headers=headers,
                auth=auth,
                ca_file=p.ca_file,
                verify=p.verify_tls,
                follow_redirects=p.follow_redirects,
                secrets=self.secrets(),
                pool=self.context.resources.http() if self.context.resources else None,
            )
        return self._client

    async def run(self) -> Result:
        p = self.params
        client = self._http()
        started = time.perf_counter()
        response = await client.request(p.method, p.url, content=p.body)
        latency = time.perf_counter() - started
        code = response.status_code
        details: dict[str, Any] = {"status_code": code, "url": self._shown}
        expiry = response.certificate_expiry
        if expiry is not None:
            details["tls_cert_expiry_timestamp_seconds"] = expiry
        measured: dict[str, Any] = {
            "observed_value": latency,
            "observed_unit": "s",
            "details": details,
        }
        said = f"{p.method} {self._shown} answered HTTP {code} in {format_duration(latency)}"

        if not any(low <= code <= high for low, high in p.expected_status):
            expected = _format_ranges(p.expected_status)
            meaning = (
                "the server is failing"
                if code >= 500
                else "the endpoint moved, needs credentials or refuses the request"
            )
            return self.failed(f"{said}, expected {expected}; {meaning}.", **measured)

        problem = self._body_problem(response)
        if problem:
            return self.failed(f"{said}, but {problem}", **measured)
        if p.latency_warn is not None and latency > p.latency_warn:
            return self.warned(
                f"{said}, slower than the {format_duration(p.latency_warn)} warning threshold; "
                "the endpoint is overloaded or a dependency is slow.",
                **measured,
            )
        return self.passed(f"{said}.", **measured)

    def _body_problem(self, response: HttpResponse) -> str | None:
        p = self.params
        if p.body_contains is not None and p.body_contains not in response.text:
            return (
                f"the body does not contain {p.body_contains!r}; an error page or a different "
                "application is answering."
            )
        if self._regex is not None and not self._regex.search(response.text):
            return (
                f"the body does not match /{p.body_regex}/; an error page or a different "
                "application is answering."
            )
        if self._json_path is not None:
            try:
                document = response.json()
            except (ValueError, UnicodeDecodeError):
                return "the body is not JSON, so the JSON path cannot be checked."
            value = json_lookup(document, self._json_path)
            if value is _MISSING:
                return f"the JSON body has no value at {p.json_path}."
            if "json_equals" in p.model_fields_set and value != p.json_equals:
                return (
                    f"{p.json_path} is {json.dumps(value)[:80]}, expected "
                    f"{json.dumps(p.json_equals)[:80]}."
                )
        return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


__all__ = ["CheckFailed", "HttpCheck"]
