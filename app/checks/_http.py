"""The HTTP engine behind every HTTP-based check (``http`` and the vendor APIs).

What it provides:

* one TLS context per trust configuration (system store, or a ``ca_file``), built once;
* one aiohttp session and connection pool per trust configuration and event loop, shared by the
  checks: each check keeps its own headers, credentials and timeout, and its connection to its
  host stays open between runs (keep-alive), so a run skips the TCP and TLS handshakes;
* a process-wide bound on requests in flight (and on connections per host), so thousands of
  checks falling due together cannot open thousands of sockets at once;
* the translation of transport errors and HTTP statuses into :class:`CheckFailed` sentences a
  person can act on, with the check's own secrets scrubbed from anything a vendor echoes back.

Why aiohttp and not httpx: httpx (over httpcore and anyio) spends its time in per-request
bookkeeping that grows with concurrency, and its shared pool scans every connection and queued
request on each request (encode/httpx#3215). ``bench/probes.py``, 50 concurrent checks against one
local target on 2 cores, in one run: plain httpx GETs 1,716/s with a client per check and 254/s
with one shared client; drwatch's http checks (runner included) 8,270/s on this engine, 4,262/s
even with a new connection per probe; prometheus-blackbox-exporter 0.23 2,790/s. httpx would miss
the budget (>= 1x blackbox) either way. With aiohttp a shared pool was as fast as a session per
check (ratio 0.99-1.01 in earlier runs) but a session per check cost about 16 KB each (80 MB for
5,000 checks), hence one shared pool. Cookies are not kept, so checks never see each other's.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import ssl
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509

from app.checks import base
from app.checks.base import Check, CheckContext, CheckFailed
from app.redact import MASK, redact_url
from app.units import format_duration

# Requests in flight across all checks of the process. High enough that it never throttles a
# normal configuration, low enough to stay far below the default open-files limit (1024).
MAX_IN_FLIGHT = 512
# Connections to one host:port. Many checks may watch one vendor; a hung host holds at most this
# many connections, and checks of other hosts are not held up by it.
MAX_CONNECTIONS_PER_HOST = 100
USER_AGENT = "drwatch"

P = TypeVar("P", bound=base.Params)


# --- TLS ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def tls_context(ca_file: str | None = None, *, verify: bool = True) -> ssl.SSLContext:
    """The shared client TLS context: the system trust store, or only ``ca_file`` (a PEM bundle)."""
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise CheckFailed(
            f"The CA bundle {ca_file} cannot be loaded ({exc}); fix the ca_file setting.",
            permanent=True,
        ) from None


def certificate_expiry(der: bytes) -> float:
    """Unix seconds of the notAfter of a DER-encoded certificate."""
    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


def _connection_certificate_expiry(response: aiohttp.ClientResponse) -> float | None:
    """notAfter (unix seconds) of the leaf certificate on the response's connection."""
    # aiohttp hands a connection back to the pool as soon as a small body has arrived, so
    # response.connection is often None already; the protocol keeps the transport either way.
    # (A protocol with no unread data is falsy, hence the explicit None test.)
    protocol = getattr(response, "_protocol", None)
    if protocol is None:
        protocol = getattr(response.connection, "protocol", None)
    transport = getattr(protocol, "transport", None)
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return certificate_expiry(der) if der else None


def describe_verification_error(error: ssl.SSLCertVerificationError, host: str) -> str:
    """A sentence for a failed certificate verification, by OpenSSL's verify code."""
    code = getattr(error, "verify_code", None)
    reason = getattr(error, "verify_message", None) or str(error)
    if code == 10:
        return (
            f"The TLS certificate of {host} has expired; renew it (clients refuse the connection)."
        )
    if code == 9:
        return f"The TLS certificate of {host} is not valid yet; check the issuer and the clocks."
    if code == 62 or "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
        return (
            f"The TLS certificate of {host} is not issued for that name ({reason}); "
            "the wrong certificate is installed or the name points at the wrong server."
        )
    if code in (18, 19, 20, 21, 2):
        return (
            f"The TLS certificate of {host} is not trusted ({reason}); it is self-signed or its "
            "chain is incomplete, so clients will refuse it."
        )
    return f"The TLS certificate of {host} failed verification ({reason})."


# --- bounded concurrency -------------------------------------------------------------------------

_in_flight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _in_flight_limit() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    semaphore = _in_flight.get(loop)
    if semaphore is None:
        semaphore = _in_flight[loop] = asyncio.Semaphore(MAX_IN_FLIGHT)
    return semaphore


# --- the client ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete response: status, headers and the whole body, read before the connection is
    handed back to the pool.
    """

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str
    # notAfter (unix seconds) of the leaf certificate, for https responses.
    certificate_expiry: float | None = None

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return json.loads(self.content)


class _SharedSession:
    """An aiohttp session (and its connection pool) shared by the checks of one event loop that
    trust the same certificates; closed when the last of those checks closes.
    """

    def __init__(self, tls: ssl.SSLContext) -> None:
        connector = aiohttp.TCPConnector(
            ssl=tls,
            limit=MAX_IN_FLIGHT,
            limit_per_host=MAX_CONNECTIONS_PER_HOST,
            ttl_dns_cache=60,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            # Checks must not see each other's cookies.
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        self.users = 0


_sessions: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str | None, bool], _SharedSession]
] = weakref.WeakKeyDictionary()


class HttpClient:
    """One check's HTTP client: its headers, timeout and messages, over the shared session.

    ``what`` names the other side in messages ("Twilio", "https://example.com/health").
    ``secrets`` are scrubbed from any text taken from a response. The session is joined on the
    first request (it needs the running event loop); :meth:`aclose` leaves it, and the last check
    to leave closes it.
    """

    def __init__(
        self,
        what: str,
        *,
        timeout: float,
        base_url: str = "",
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        ca_file: Path | None = None,
        verify: bool = True,
        follow_redirects: bool = False,
        secrets: Sequence[str] = (),
    ) -> None:
        self.what = what
        self.timeout = timeout
        self.base_url = base_url.rstrip("/")
        self.secrets = [s for s in secrets if s]
        self.follow_redirects = follow_redirects
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {pair}"
        self._trust = (str(ca_file) if ca_file else None, verify)
        self._tls = tls_context(self._trust[0], verify=verify)
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout)
        self._shared: _SharedSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        shared = self._shared
        if shared is not None and not shared.session.closed:
            return shared.session
        by_trust = _sessions.setdefault(asyncio.get_running_loop(), {})
        shared = by_trust.get(self._trust)
        if shared is None or shared.session.closed:
            shared = by_trust[self._trust] = _SharedSession(self._tls)
        shared.users += 1
        self._shared = shared
        return shared.session

    def url(self, url: str) -> str:
        return url if "://" in url else f"{self.base_url}{url}"

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        content: str | bytes | None = None,
    ) -> HttpResponse:
        """Send one request and read the whole body. Transport errors become CheckFailed."""
        target = self.url(url)
        session = self._session()
        sent_headers = {**self._headers, **headers} if headers else self._headers
        async with _in_flight_limit():
            try:
                async with session.request(
                    method,
                    target,
                    params=params,
                    headers=sent_headers,
                    data=data if data is not None else content,
                    allow_redirects=self.follow_redirects,
                    timeout=self._timeout,
                ) as response:
                    expiry = _connection_certificate_expiry(response)
                    body = await response.read()
                    return HttpResponse(
                        status_code=response.status,
                        headers=response.headers,
                        content=body,
                        url=str(response.url),
                        certificate_expiry=expiry,
                    )
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
                raise self.transport_failure(exc, target) from None

    async def aclose(self) -> None:
        shared, self._shared = self._shared, None
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0 and not shared.session.closed:
            by_trust = _sessions.get(asyncio.get_running_loop(), {})
            if by_trust.get(self._trust) is shared:
                del by_trust[self._trust]
            await shared.session.close()

    # -- messages

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def transport_failure(self, exc: BaseException, url: str) -> CheckFailed:
        """What a transport error means for a person."""
        try:
            parts = urlsplit(url)
            host = parts.hostname or url
            where = f"{host}:{parts.port or _default_port(parts.scheme)}"
        except ValueError:
            host = where = self.what
        what, limit = self.what, format_duration(self.timeout)
        verification = _find_cause(exc, ssl.SSLCertVerificationError)
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            # aiohttp's wrapper is itself a CertificateError; the verify code is on the original.
            original = exc.certificate_error
            verification = original if isinstance(original, ssl.SSLCertVerificationError) else None
        if verification is not None:
            return CheckFailed(describe_verification_error(verification, host))
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return CheckFailed(
                f"No connection to {what} at {where} within {limit}; the host is down or a "
                "firewall drops the packets."
            )
        if isinstance(exc, TimeoutError):
            return CheckFailed(
                f"{what} at {where} sent no complete answer within {limit}; it is hung or "
                "overloaded."
            )
        if _find_cause(exc, ConnectionRefusedError) is not None or "refused" in str(exc).lower():
            return CheckFailed(
                f"{what} refused the connection at {where}; nothing is listening there "
                "(the service is down or the address is wrong)."
            )
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return CheckFailed(
                f"The host of {what} ({where}) cannot be resolved; check the URL and DNS."
            )
        if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
            return CheckFailed(
                f"The TLS handshake with {what} at {where} failed; the server does not speak TLS "
                "there or rejects the protocol versions drwatch offers."
            )
        if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
            return CheckFailed(
                f"{what} at {where} closed the connection without a complete HTTP response; "
                "it is crashing or something other than an HTTP server answers there."
            )
        if isinstance(exc, aiohttp.TooManyRedirects):
            return CheckFailed(
                f"{what} redirects in a loop; fix the URL or the server's redirects."
            )
        if isinstance(exc, aiohttp.InvalidURL):
            return CheckFailed(f"{what}: the URL is not valid.", permanent=True)
        detail = self.scrub(str(exc)) or type(exc).__name__
        return CheckFailed(f"The request to {what} at {where} failed ({detail}).")

    def status_failure(
        self, response: HttpResponse, *, credential: str = "credentials", resource: str = ""
    ) -> CheckFailed:
        """What an unexpected HTTP status from an API means for a person."""
        code = response.status_code
        detail = self.error_detail(response)
        said = f"HTTP {code}: {detail}" if detail else f"HTTP {code}"
        what = self.what
        target = resource or "the resource drwatch asked for"
        context = {"status_code": code}
        if code == 401:
            return CheckFailed(
                f"{what} rejected the {credential} ({said}); it is wrong, revoked or expired, "
                "so update it where drwatch and the application read it.",
                permanent=True,
                context=context,
            )
        if code == 403:
            return CheckFailed(
                f"{what} refused access to {target} ({said}); the {credential} lacks the "
                "permission, or the account is restricted.",
                permanent=True,
                context=context,
            )
        if code == 404:
            return CheckFailed(
                f"{what} has no {target} ({said}); the id in the configuration is wrong or it "
                "was deleted.",
                permanent=True,
                context=context,
            )
        if code == 429:
            return CheckFailed(
                f"{what} is rate-limiting these requests ({said}); the application may be "
                "throttled too.",
                context=context,
            )
        if code >= 500:
            return CheckFailed(
                f"{what} is failing on its side ({said}); expect an outage there and check its "
                "status page.",
                context=context,
            )
        return CheckFailed(
            f"{what} rejected the request for {target} ({said}).",
            permanent=400 <= code < 500,
            context=context,
        )

    def error_detail(self, response: HttpResponse) -> str:
        """The vendor's own error message from a JSON error body, scrubbed and shortened."""
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return ""
        message: Any = None
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                message = error.get("message") or error.get("code")
            elif isinstance(error, str):
                message = body.get("message") or body.get("error_description") or error
            if message is None:
                message = body.get("message") or body.get("detail")
            if isinstance(message, list):
                message = "; ".join(str(m) for m in message)
        if not isinstance(message, str | int) or message == "":
            return ""
        text = self.scrub(str(message)).strip().rstrip(".")
        return text if len(text) <= 160 else text[:157] + "..."

    def json(self, response: HttpResponse) -> Any:
        """The parsed JSON body, or CheckFailed saying the body is not what the API sends."""
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError):
            kind = response.headers.get("content-type", "no content type")
            return_text = f"{len(response.content)} bytes of {kind}"
            raise CheckFailed(
                f"{self.what} answered HTTP {response.status_code} with a body that is not JSON "
                f"({return_text}); a proxy or an error page may be answering instead of the API.",
                context={"status_code": response.status_code},
            ) from None


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


E = TypeVar("E", bound=BaseException)


def _find_cause(exc: BaseException, kind: type[E]) -> E | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


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
                self.vendor, timeout=self.timeout, secrets=self.secrets(), **self.client_options()
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
            raise self.http.status_failure(response, credential=credential, resource=resource)
        return self.http.json(response)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def base_url_of(url: str) -> str:
    """A base URL without a trailing slash, for joining with API paths."""
    return url.rstrip("/")


def shown_url(url: str) -> str:
    """A URL safe to put in a message (no password, no query string)."""
    return redact_url(url)


def unix_to_iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


__all__ = [
    "ApiCheck",
    "HttpClient",
    "HttpResponse",
    "certificate_expiry",
    "describe_verification_error",
    "require",
    "tls_context",
]
