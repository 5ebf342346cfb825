"""The base of the vendor API checks (Twilio, VAPI, OpenAI, WhatsApp, Google Calendar, Render,
status pages): one :class:`~app.checks._http.HttpClient` per check over the service's shared pool,
and helpers for reading vendor JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from app.checks import base
from app.checks._http import FAILING_MEANS, MISSING_MEANS, HttpClient, HttpResponse, shown_url
from app.checks.base import Check, CheckContext, CheckFailed
from app.units import rfc3339

P = TypeVar("P", bound=base.Params)

# --- reading vendor JSON -------------------------------------------------------------------------

T = TypeVar("T")


def require(body: Any, key: str, kind: type[T], what: str) -> T:
    """``body[key]`` if ``body`` is an object and the value is a ``kind``, else CheckFailed."""
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, kind):
        raise CheckFailed(
            f"{what} answered without a valid {key!r} field; its API may have changed, or "
            "something else answers at the configured base_url."
        )
    return value


# --- vendor checks -------------------------------------------------------------------------------


class ApiCheck(Check[P]):
    """Base of the checks that call one vendor's HTTP API with a per-check :class:`HttpClient`.

    Subclasses set ``vendor`` (its name in messages), implement :meth:`client_options` (base URL,
    auth) and :meth:`run`. A vendor outage is global, so failing over to another region would not
    help: these checks default to ``degraded``.
    """

    vendor: ClassVar[str]
    default_criticality: ClassVar[base.Criticality] = "degraded"
    default_interval: ClassVar[float] = 60.0
    # How "HTTP 404" and "HTTP 5xx" sentences end for this vendor (see HttpClient.status_failure).
    missing_means: ClassVar[str] = MISSING_MEANS
    failing_means: ClassVar[str] = FAILING_MEANS

    def __init__(
        self, name: str, params: P, *, timeout: float, context: CheckContext | None = None
    ) -> None:
        super().__init__(name, params, timeout=timeout, context=context)
        self._client: HttpClient | None = None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`HttpClient` beyond name, timeout and secrets."""
        return {}

    @property
    def http(self) -> HttpClient:
        if self._client is None:
            self._client = HttpClient(
                self.vendor,
                timeout=self.timeout,
                secrets=self.secrets(),
                pool=self.context.resources.http() if self.context.resources else None,
                **self.client_options(),
            )
        return self._client

    async def get_json(
        self,
        url: str,
        *,
        resource: str,
        credential: str = "API key",
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """GET ``url`` and return its JSON body; any status but 2xx becomes CheckFailed."""
        response = await self.http.request("GET", url, params=params)
        if not response.is_success:
            raise self.http.status_failure(
                response,
                credential=credential,
                resource=resource,
                missing_means=self.missing_means,
                failing_means=self.failing_means,
            )
        return self.http.json(response)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def base_url_of(url: str) -> str:
    """A base URL without a trailing slash, for joining with API paths."""
    return url.rstrip("/")


def unix_to_iso(seconds: float) -> str:
    return rfc3339(datetime.fromtimestamp(seconds, UTC))


__all__ = [
    "ApiCheck",
    "HttpResponse",
    "base_url_of",
    "require",
    "shown_url",
    "unix_to_iso",
]
