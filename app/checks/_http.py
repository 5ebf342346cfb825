"""The HTTP engine behind every HTTP-based check (``http`` and the vendor APIs).

What it provides:

* one TLS context per trust configuration (system store, or a ``ca_file``), built once
  (``_tls.py``);
* one aiohttp session and connection pool per trust configuration (:class:`HttpPool`, owned by
  the runtime and closed on stop), shared by the checks: each check keeps its own headers,
  credentials and timeout, and its connection to its host stays open between runs (keep-alive),
  so a run skips the TCP and TLS handshakes;
* a bound on requests in flight (and on connections per host), so thousands of checks falling
  due together cannot open thousands of sockets at once;
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
import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp

from app.checks._tls import certificate_expiry, describe_verification_error, tls_context
from app.checks.base import CheckFailed
from app.redact import MASK, encoded_forms, redact_url
from app.runner import uncharged
from app.units import format_duration

# Requests in flight across all checks of the process (DRWATCH_MAX_IN_FLIGHT sets it for a
# service). High enough that it never throttles a normal configuration, low enough to stay far
# below the default open-files limit (1024).
MAX_IN_FLIGHT = 512
# Connections to one host:port. Many checks may watch one vendor; a hung host holds at most this
# many connections, and checks of other hosts are not held up by it.
MAX_CONNECTIONS_PER_HOST = 100
USER_AGENT = "drwatch"
# How a 404 and a 5xx from a vendor API end, unless the check knows better (status_failure).
MISSING_MEANS = "the id in the configuration is wrong or it was deleted"
FAILING_MEANS = "expect an outage there and check its status page"


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


class HttpPool:
    """The HTTP connection pools of one drwatch: one aiohttp session per trust configuration
    (system store or a ``ca_file``; verification on or off), and one bound on requests in flight.

    The runtime creates it on the first HTTP request of any check and closes it on stop
    (:class:`app.checks.base.SharedResources`), so no session outlives the service and none is
    shared across event loops. ``max_in_flight`` keeps thousands of checks falling due together
    from opening thousands of sockets at once.
    """

    def __init__(self, *, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = asyncio.Semaphore(max_in_flight)
        self._sessions: dict[tuple[str | None, bool], aiohttp.ClientSession] = {}

    def session(self, trust: tuple[str | None, bool], tls: ssl.SSLContext) -> aiohttp.ClientSession:
        """The shared session for one trust configuration, created on first use."""
        session = self._sessions.get(trust)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                ssl=tls,
                limit=self.max_in_flight,
                limit_per_host=MAX_CONNECTIONS_PER_HOST,
                ttl_dns_cache=60,
            )
            session = self._sessions[trust] = aiohttp.ClientSession(
                connector=connector,
                # Checks must not see each other's cookies.
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            if not session.closed:
                await session.close()


class HttpClient:
    """One check's HTTP client: its headers, timeout and messages, over the shared session.

    ``what`` names the other side in messages ("Twilio", "https://example.com/health").
    ``secrets`` are scrubbed from any text taken from a response. ``pool`` is the service's shared
    :class:`HttpPool`; a client built without one (a check used on its own) keeps a private pool
    and closes it in :meth:`aclose`.
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
        pool: HttpPool | None = None,
    ) -> None:
        self.what = what
        self.timeout = timeout
        self.base_url = base_url.rstrip("/")
        self.secrets = [s for s in secrets if s]
        # Also as a server or proxy may echo them (Basic auth, a query string), longest first.
        self._masked = sorted(
            {form for s in self.secrets for form in (s, *encoded_forms(s))}, key=len, reverse=True
        )
        self.follow_redirects = follow_redirects
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {pair}"
        self._trust = (str(ca_file) if ca_file else None, verify)
        self._tls = tls_context(self._trust[0], verify=verify)
        # The runner owns the check's deadline: it leaves out drwatch's own waits (a slot, a
        # busy event loop), which aiohttp's timers cannot tell from a slow dependency. aiohttp's
        # timeout is only a backstop for a client used without the runner.
        self._timeout = aiohttp.ClientTimeout(total=3 * timeout + 1)
        self._owns_pool = pool is None
        self._pool = pool

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
        if self._pool is None:
            self._pool = HttpPool()
        pool = self._pool
        session = pool.session(self._trust, self._tls)
        sent_headers = {**self._headers, **headers} if headers else self._headers
        # Waiting for an in-flight slot is drwatch's own queueing, not the dependency's latency:
        # the check's timeout (and aiohttp's, which starts with the request) runs from here on.
        async with uncharged():
            await pool.in_flight.acquire()
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
        finally:
            pool.in_flight.release()

    async def aclose(self) -> None:
        """Close a private pool; the service's shared pool is closed by the runtime."""
        if self._owns_pool and self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    # -- messages

    def scrub(self, text: str) -> str:
        for secret in self._masked:
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
        self,
        response: HttpResponse,
        *,
        credential: str = "credentials",
        resource: str = "",
        missing_means: str = MISSING_MEANS,
        failing_means: str = FAILING_MEANS,
    ) -> CheckFailed:
        """What an unexpected HTTP status from an API means for a person.

        ``missing_means`` and ``failing_means`` finish the sentences for 404 and 5xx: what they
        mean depends on what the other side is (an API with ids in the configuration, or a
        status page, which has no id and is itself the place one would look for an outage).
        """
        code = response.status_code
        # The body of a failed authentication is left out: servers and proxies echo the
        # credentials they rejected there, in forms no scrubber can know all of.
        detail = "" if code in (401, 407) else self.error_detail(response)
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
                f"{what} has no {target} ({said}); {missing_means}.",
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
                f"{what} is failing on its side ({said}); {failing_means}.",
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


def shown_url(url: str) -> str:
    """A URL safe to put in a message (no password, no query string)."""
    return redact_url(url)


__all__ = [
    "MAX_IN_FLIGHT",
    "HttpClient",
    "HttpPool",
    "HttpResponse",
    "shown_url",
]
