"""Redis: reachable, answering PING, in the expected role, replicas linked, memory headroom.

Every run opens one connection (AUTH and TLS as the URL says), times a ``PING``, reads ``INFO
server``, ``INFO replication`` and ``INFO memory``, and closes the connection again, also when the
runner cancels the run at its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.checks._net import (
    does_not_resolve,
    is_refused,
    milliseconds,
    no_answer,
    refused,
    unreachable,
)
from app.checks.base import Check, CheckFailed, Params, Result, Status
from app.redact import redact_url
from app.units import Duration, format_duration, format_size

# Share of the check's timeout this check spends before giving up itself, so a hung server is
# reported with its address and the step it hung in, before the runner's generic timeout.
_OWN_DEADLINE_SHARE = 0.9
_DEFAULT_PORT = 6379


@dataclass(frozen=True)
class _Target:
    """Where a Redis URL points, safe to show: ``host:port/db``, no password."""

    address: str
    db: str
    tls: bool
    has_password: bool
    url: str

    @property
    def where(self) -> str:
        return f"{self.address}/{self.db}"

    @classmethod
    def from_url(cls, url: str) -> _Target:
        parts = urlsplit(url)
        # Everything after the last "@" is host and port, never the password.
        hostport = parts.netloc.rpartition("@")[2] or "localhost"
        has_port = "]:" in hostport if hostport.startswith("[") else ":" in hostport
        if not has_port:
            hostport = f"{hostport}:{_DEFAULT_PORT}"
        db = unquote(parts.path.lstrip("/")) or "0"
        tls = parts.scheme.lower() == "rediss"
        return cls(hostport, db, tls, parts.password is not None, redact_url(url))


class RedisCheck(Check["RedisCheck.Params"]):
    """PINGs Redis and checks its role, the replica's link to its primary and memory use."""

    class Params(Params):
        """Parameters of the ``redis`` check type."""

        url: SecretStr = Field(
            description="redis://[user:password@]host:port/db, or rediss:// for TLS."
        )
        ssl_ca_file: str | None = Field(
            None, description="PEM bundle of the CA that signed the server's certificate."
        )
        ssl_verify: bool = Field(
            True, description="Verify the server's certificate and host name (rediss:// only)."
        )
        expect_role: Literal["primary", "replica"] | None = Field(
            None, description="Fail unless the server is in this role; default: either."
        )
        latency_warn: Duration | None = Field(0.5, description="Warn when PING takes longer.")
        memory_warn: float = Field(
            0.9,
            gt=0,
            le=1,
            description="Warn when used_memory exceeds this share of maxmemory (if set).",
        )

        @field_validator("url")
        @classmethod
        def _redis_url(cls, value: SecretStr) -> SecretStr:
            # The value is a secret: the message must not repeat it.
            url = value.get_secret_value()
            if url.partition("://")[0].lower() not in ("redis", "rediss"):
                raise ValueError("must be a redis:// or rediss:// URL")
            try:
                urlsplit(url).port  # noqa: B018 - parsing the port is the check
            except ValueError:
                raise ValueError("has a port that is not a number from 0 to 65535") from None
            return value

    default_criticality = "critical"
    default_interval = 15.0
    default_timeout = 5.0

    def __init__(self, name: str, params: RedisCheck.Params, **kwargs: Any) -> None:
        super().__init__(name, params, **kwargs)
        self._target = _Target.from_url(params.url.get_secret_value())

    def _client(self, deadline: float) -> Redis:
        options: dict[str, Any] = {}
        if self._target.tls:
            options["ssl_cert_reqs"] = "required" if self.params.ssl_verify else "none"
            options["ssl_check_hostname"] = self.params.ssl_verify
            if self.params.ssl_ca_file:
                options["ssl_ca_certs"] = self.params.ssl_ca_file
        return Redis.from_url(
            self.params.url.get_secret_value(),
            single_connection_client=True,
            socket_connect_timeout=deadline,
            socket_timeout=deadline,
            # One attempt per run: the scheduler is the retry loop, and a retry would hide how
            # long the server really took.
            retry=Retry(NoBackoff(), 0),
            # RESP2: every Redis (and compatible server) speaks it, and INFO reads the same.
            protocol=2,
            decode_responses=True,
            **options,
        )

    async def run(self) -> Result:
        target = self._target
        own_deadline = self.timeout * _OWN_DEADLINE_SHARE
        step = "connecting"
        try:
            async with asyncio.timeout(own_deadline):
                client = self._client(own_deadline)
                try:
                    started = time.perf_counter()
                    await client.initialize()
                    connected = time.perf_counter()
                    step = "waiting for the answer to PING"
                    await client.ping()
                    latency = time.perf_counter() - connected
                    step = "reading INFO"
                    server = await client.info("server")
                    replication = await client.info("replication")
                    memory = await client.info("memory")
                finally:
                    await _close(client)
        except (TimeoutError, redis_errors.TimeoutError):
            raise CheckFailed(
                no_answer(
                    "Redis",
                    target.where,
                    self.timeout,
                    step,
                    "the server is hung, blocked by a slow command or overloaded",
                ),
                context=self._context(step=step),
            ) from None
        except (redis_errors.RedisError, OSError) as exc:
            raise self._failure(exc, step) from None
        return self._evaluate(
            server,
            replication,
            memory,
            latency=latency,
            connect_seconds=connected - started,
        )

    def _evaluate(
        self,
        server: dict[str, Any],
        replication: dict[str, Any],
        memory: dict[str, Any],
        *,
        latency: float,
        connect_seconds: float,
    ) -> Result:
        params = self.params
        target = self._target
        is_replica = replication.get("role") == "slave"
        role = "replica" if is_replica else "primary"
        used_memory = int(memory.get("used_memory", 0))
        maxmemory = int(memory.get("maxmemory", 0))
        memory_ratio = used_memory / maxmemory if maxmemory else None
        version = server.get("redis_version", "")
        details: dict[str, Any] = {
            "role": role,
            "redis_version": version,
            "latency_seconds": round(latency, 6),
            "connect_seconds": round(connect_seconds, 6),
            "used_memory_bytes": used_memory,
            "maxmemory_bytes": maxmemory,
            "maxmemory_policy": memory.get("maxmemory_policy"),
            "memory_used_ratio": None if memory_ratio is None else round(memory_ratio, 4),
            "connected_slaves": int(replication.get("connected_slaves", 0)),
            "target": target.url,
        }
        primary = ""
        if is_replica:
            primary = f"{replication.get('master_host')}:{replication.get('master_port')}"
            details["master"] = primary
            details["master_link_status"] = replication.get("master_link_status")
            details["master_last_io_seconds_ago"] = replication.get("master_last_io_seconds_ago")

        def verdict(status: Status, output: str) -> Result:
            return Result(status, output, latency, "s", details=details)

        if params.expect_role == "primary" and is_replica:
            return verdict(
                Status.FAIL,
                f"Redis at {target.where} is a replica of {primary} but a primary was expected; "
                "a failover may have happened, or the URL points at a replica.",
            )
        if params.expect_role == "replica" and not is_replica:
            return verdict(
                Status.FAIL,
                f"Redis at {target.where} is a primary but a replica was expected; it was "
                "promoted (REPLICAOF NO ONE or a failover), or the URL points at the primary.",
            )
        if is_replica and replication.get("master_link_status") != "up":
            last_io = replication.get("master_last_io_seconds_ago", -1)
            down_for = replication.get("master_link_down_since_seconds")
            down = (
                f", link down for {format_duration(float(down_for))}"
                if isinstance(down_for, int | float) and 0 <= down_for < 10**9
                else ""
            )
            return verdict(
                Status.FAIL,
                f"Redis replica {target.where} lost its primary {primary} "
                f"(master_link_status={replication.get('master_link_status')}, "
                f"master_last_io_seconds_ago={last_io}{down}); it serves stale data until the "
                "primary is back or the replica is pointed at a new one.",
            )

        warnings = []
        if params.latency_warn is not None and latency > params.latency_warn:
            warnings.append(
                f"Redis at {target.where} took {milliseconds(latency)} to answer PING (warn "
                f"above {milliseconds(params.latency_warn)}); the server is busy with slow "
                "commands, or the network is slow."
            )
        if memory_ratio is not None and memory_ratio > params.memory_warn:
            policy = memory.get("maxmemory_policy", "noeviction")
            consequence = (
                "writes will be rejected with OOM errors"
                if policy == "noeviction"
                else f"keys are being evicted ({policy})"
            )
            warnings.append(
                f"Redis at {target.where} uses {memory_ratio:.0%} of maxmemory "
                f"({format_size(used_memory)} of {format_size(maxmemory)}); when it is full "
                f"{consequence}."
            )
        if warnings:
            return verdict(Status.WARN, " ".join(warnings))

        summary = f"Redis {version} at {target.where} answered PING in {milliseconds(latency)} as "
        summary += f"a replica of {primary} (link up)." if is_replica else "the primary."
        return verdict(Status.PASS, summary)

    def _failure(self, exc: BaseException, step: str) -> CheckFailed:
        target = self._target
        context = self._context(step=step, error=type(exc).__name__)
        cause = _os_cause(exc)
        if isinstance(exc, redis_errors.AuthenticationError) and not target.has_password:
            return CheckFailed(
                f"Redis at {target.where} requires a password but the URL has none; add "
                "user:password to the URL, retrying will not help.",
                permanent=True,
                context=context,
            )
        if isinstance(exc, redis_errors.AuthenticationError):
            return CheckFailed(
                f"Redis at {target.where} rejected the credentials ({_reason(exc)}); the "
                "password or ACL user in the URL is wrong, retrying will not help.",
                permanent=True,
                context=context,
            )
        if isinstance(exc, redis_errors.NoPermissionError):
            return CheckFailed(
                f"Redis at {target.where} refused a command while {step} ({_reason(exc)}); "
                "grant the ACL user +ping and +info.",
                permanent=True,
                context=context,
            )
        if isinstance(exc, redis_errors.BusyLoadingError):
            return CheckFailed(
                f"Redis at {target.where} is loading its dataset into memory and answers no "
                "commands until it has finished; it probably just restarted.",
                context=context,
            )
        if isinstance(cause, ssl.SSLCertVerificationError):
            return CheckFailed(
                f"Redis at {target.address} presented a certificate drwatch does not trust "
                f"({cause.verify_message}); set ssl_ca_file to the CA that signed it, or fix the "
                "host name in the URL.",
                context=context,
            )
        if isinstance(cause, ssl.SSLError):
            return CheckFailed(
                f"The TLS handshake with Redis at {target.address} failed "
                f"({cause.reason or cause}); check ssl_ca_file and ssl_verify, and that the "
                "port speaks TLS.",
                context=context,
            )
        if isinstance(cause, socket.gaierror):
            host = target.address.rpartition(":")[0]
            return CheckFailed(does_not_resolve("Redis", host, cause.strerror), context=context)
        if is_refused(cause):
            return CheckFailed(refused("Redis", target.address), context=context)
        if "max number of clients reached" in str(exc):
            return CheckFailed(
                f"Redis at {target.where} refused a new client: max number of clients "
                "reached; a client is leaking connections, or maxclients is too low.",
                context=context,
            )
        if cause is not None:
            return CheckFailed(unreachable("Redis", target.address, cause), context=context)
        if isinstance(exc, redis_errors.ConnectionError):
            return CheckFailed(
                f"The connection to Redis at {target.where} broke while {step} "
                f"({_reason(exc)}); the server may have restarted or be dropping clients.",
                context=context,
            )
        return CheckFailed(
            f"Redis at {target.where} answered with an error while {step}: {_reason(exc)}.",
            context=context,
        )

    def _context(self, **extra: str) -> dict[str, str]:
        return {"target": self._target.url, **extra}


async def _close(client: Redis) -> None:
    # Shielded, so a cancelled run still finishes closing its socket in the background. A close
    # that fails must not hide what the run found.
    closing = asyncio.ensure_future(client.aclose())
    closing.add_done_callback(_ignore_outcome)
    with contextlib.suppress(Exception):
        await asyncio.shield(closing)


def _ignore_outcome(task: asyncio.Future[None]) -> None:
    # Closing a connection that already broke may fail; the run has reported that already.
    if not task.cancelled():
        task.exception()


def _os_cause(exc: BaseException) -> OSError | None:
    """The socket error behind a redis-py error (redis-py re-raises it as ConnectionError)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(exc: BaseException) -> str:
    return str(exc).strip().rstrip(".") or type(exc).__name__
