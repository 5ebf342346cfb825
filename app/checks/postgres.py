"""PostgreSQL: reachable, answering, in the expected role, replicas keeping up, slots left.

Every run opens one connection, runs ``SELECT 1`` (or the configured read-only query), reads the
server's role, replication lag and connection usage in one more round trip, and closes the
connection again, also when the runner cancels the run at its timeout.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import asyncpg
from pydantic import Field, SecretStr, field_validator

from app.checks._net import (
    PostgresDsn,
    does_not_resolve,
    has_valid_port,
    is_postgres_url,
    is_refused,
    milliseconds,
    no_answer,
    refused,
    unreachable,
)
from app.checks.base import Check, CheckFailed, Params, Result, Status
from app.redact import redact_url
from app.units import Duration, format_duration

# Share of the check's timeout this check spends before giving up itself, so a hung server is
# reported with its address and the step it hung in, before the runner's generic timeout.
_OWN_DEADLINE_SHARE = 0.9
# A graceful close sends Terminate (and a cancel request for a running query); past this the
# socket is simply dropped.
_CLOSE_TIMEOUT = 1.0

# One round trip for everything but the probe. pg_last_xact_replay_timestamp() is the commit
# time of the last replayed transaction, so on an idle primary it falls further behind although
# nothing is missing; when the replica has replayed all it received and its WAL receiver is
# streaming, it is in sync and the lag is 0.
_STATUS_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('server_version') AS server_version,
       current_setting('default_transaction_read_only') = 'on' AS default_read_only,
       current_setting('transaction_read_only') = 'on' AS read_only,
       current_setting('max_connections')::int AS max_connections,
       (SELECT coalesce(sum(numbackends), 0)::int FROM pg_stat_database) AS backends,
       CASE WHEN pg_is_in_recovery() THEN EXISTS (SELECT 1 FROM pg_stat_wal_receiver) END
         AS streaming,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
                 AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver) THEN 0.0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
       END AS replication_lag_seconds
"""


@dataclass(frozen=True)
class _Target:
    """Where a DSN points, safe to show: ``host:port/database`` and the user, no password."""

    address: str
    database: str
    user: str | None
    url: str

    @property
    def where(self) -> str:
        return f"{self.address}/{self.database}"

    @classmethod
    def from_dsn(cls, dsn: str) -> _Target:
        parsed = PostgresDsn.parse(dsn)
        database = parsed.database or "(default database)"
        return cls(parsed.address, database, parsed.user, redact_url(dsn))


# What a server's answer means for a person: (error classes, sentence, whether retrying cannot
# help), first match wins. The sentence names {where}, {address}, {database}, {user}, {error}.
_SERVER_ERRORS: tuple[
    tuple[type[BaseException] | tuple[type[BaseException], ...], str, bool], ...
] = (
    (
        (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError),
        "PostgreSQL at {where} rejected the login of {user} ({error}); the password in the DSN or "
        "pg_hba.conf is wrong, retrying will not help.",
        True,
    ),
    (
        asyncpg.InvalidCatalogNameError,
        "PostgreSQL at {address} has no database {database!r}; the DSN names the wrong database, "
        "or it was dropped.",
        True,
    ),
    (
        asyncpg.TooManyConnectionsError,
        "PostgreSQL at {where} refused a new connection: {error}; clients are holding every slot "
        "(a connection leak or a missing pooler) or the limit is too low.",
        False,
    ),
    (
        asyncpg.CannotConnectNowError,
        "PostgreSQL at {where} does not accept connections yet: {error}; it is starting, shutting "
        "down or recovering.",
        False,
    ),
    (
        asyncpg.ReadOnlySQLTransactionError,
        "The probe query for {where} tried to write ({error}); probes run in a read-only "
        "transaction, so make the query a plain SELECT.",
        True,
    ),
    (
        asyncpg.exceptions.SyntaxOrAccessError,
        "The probe query failed on {where}: {error}; fix the query or grant the check's user "
        "access.",
        True,
    ),
)


class PostgresCheck(Check["PostgresCheck.Params"]):
    """Connects, runs a probe query, and checks role, replication lag and connection usage."""

    class Params(Params):
        """Parameters of the ``postgres`` check type."""

        dsn: SecretStr = Field(description="postgresql://user:password@host:port/database")
        query: str | None = Field(
            None,
            description="Read-only query to run instead of SELECT 1, in a read-only transaction.",
        )
        expect_role: Literal["primary", "replica"] | None = Field(
            None, description="Fail unless the server is in this role; default: either."
        )
        max_replication_lag: Duration | None = Field(
            None, description="On a replica: fail when replay is further behind than this."
        )
        latency_warn: Duration | None = Field(
            1.0, description="Warn when connecting and answering the probe takes longer."
        )
        connections_warn: float = Field(
            0.8, gt=0, le=1, description="Warn when this share of max_connections is in use."
        )

        @field_validator("dsn")
        @classmethod
        def _postgres_url(cls, value: SecretStr) -> SecretStr:
            # The value is a secret: the message must not repeat it.
            dsn = value.get_secret_value()
            if not is_postgres_url(dsn):
                raise ValueError("must be a postgresql://user:password@host:port/database URL")
            if not has_valid_port(dsn):
                raise ValueError("has a port that is not a number from 0 to 65535")
            return value

        @field_validator("query")
        @classmethod
        def _not_blank(cls, value: str | None) -> str | None:
            if value is not None and not value.strip():
                raise ValueError("must not be empty; leave it out to run SELECT 1")
            return value

    default_criticality = "critical"
    default_interval = 15.0
    default_timeout = 5.0
    gauges: ClassVar[Mapping[str, str]] = {
        "replication_lag_seconds": "drwatch_replication_lag_seconds"
    }
    # A streaming replica in the standby region: its lag is what promoting it would lose.
    failover_data_loss_key: ClassVar[str | None] = "replication_lag_seconds"
    failover_data_loss_rank: ClassVar[int] = 10
    failover_data_loss_basis: ClassVar[str] = "replication lag of the standby replica"

    @classmethod
    def production_dsn(cls, params: PostgresCheck.Params) -> str | None:
        return params.dsn.get_secret_value()

    @classmethod
    def replication_lag_threshold(cls, params: PostgresCheck.Params) -> float | None:
        return params.max_replication_lag

    def __init__(self, name: str, params: PostgresCheck.Params, **kwargs: Any) -> None:
        super().__init__(name, params, **kwargs)
        self._target = _Target.from_dsn(params.dsn.get_secret_value())

    async def run(self) -> Result:
        target = self._target
        own_deadline = self.timeout * _OWN_DEADLINE_SHARE
        step = "connecting"
        started = time.perf_counter()
        try:
            async with asyncio.timeout(own_deadline):
                connection = await asyncpg.connect(
                    self.params.dsn.get_secret_value(),
                    timeout=own_deadline,
                    command_timeout=None,
                    # Unnamed statements only, so a pooler in transaction mode (PgBouncer) does
                    # not see prepared statements it cannot route.
                    statement_cache_size=0,
                    server_settings={"application_name": "drwatch"},
                )
                connected = time.perf_counter()
                try:
                    step = "running the probe query"
                    await self._probe(connection)
                    answered = time.perf_counter()
                    step = "reading the server status"
                    status = await connection.fetchrow(_STATUS_SQL)
                finally:
                    await _close(connection)
        except TimeoutError:
            raise CheckFailed(
                no_answer(
                    "PostgreSQL",
                    target.where,
                    self.timeout,
                    step,
                    "the server is hung or overloaded",
                ),
                context=self._context(step=step),
            ) from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise self._failure(exc, step) from None
        assert status is not None  # a SELECT without FROM always returns one row
        return self._evaluate(
            status,
            latency=answered - started,
            connect_seconds=connected - started,
        )

    async def _probe(self, connection: asyncpg.Connection) -> None:
        if self.params.query is None:
            await connection.execute("SELECT 1")
            return
        # The configured query may be anything a person typed; a read-only transaction makes
        # sure a probe can never change data. fetch() uses the extended protocol, which takes a
        # single statement, so "COMMIT; DELETE ..." cannot step out of the transaction.
        async with connection.transaction(readonly=True):
            await connection.fetch(self.params.query)

    def _evaluate(self, status: Any, *, latency: float, connect_seconds: float) -> Result:
        params = self.params
        target = self._target
        in_recovery: bool = status["in_recovery"]
        # "15.4 (Debian 15.4-1.pgdg120+1)" -> "15.4"
        version = str(status["server_version"]).split(" ")[0]
        role = "replica" if in_recovery else "primary"
        max_connections: int = status["max_connections"]
        connections_ratio = status["backends"] / max_connections if max_connections else 0.0
        lag: float | None = status["replication_lag_seconds"]
        if lag is not None:
            lag = max(lag, 0.0)
        details: dict[str, Any] = {
            "role": role,
            "server_version": version,
            "latency_seconds": round(latency, 6),
            "connect_seconds": round(connect_seconds, 6),
            "connections_used": status["backends"],
            "max_connections": max_connections,
            "connections_used_ratio": round(connections_ratio, 4),
            "read_only": bool(status["read_only"] or status["default_read_only"]),
            "target": target.url,
        }
        if in_recovery:
            details["streaming"] = bool(status["streaming"])
            details["replication_lag_seconds"] = None if lag is None else round(lag, 3)

        def verdict(status: Status, output: str) -> Result:
            return Result(status, output, latency, "s", details=details)

        if params.expect_role == "primary" and in_recovery:
            return verdict(
                Status.FAIL,
                f"PostgreSQL at {target.where} is a replica (in recovery) but a primary was "
                "expected; a failover may have happened, or the DSN points at a standby.",
            )
        if params.expect_role == "primary" and details["read_only"]:
            return verdict(
                Status.FAIL,
                f"PostgreSQL primary at {target.where} is read-only "
                "(default_transaction_read_only=on), so the application's writes fail; it may "
                "have been fenced off during a failover or left in maintenance mode.",
            )
        if params.expect_role == "replica" and not in_recovery:
            return verdict(
                Status.FAIL,
                f"PostgreSQL at {target.where} is not in recovery but a replica was expected; "
                "it was promoted (a failover happened), or the DSN points at the primary.",
            )
        if (
            in_recovery
            and params.max_replication_lag is not None
            and lag is not None
            and lag > params.max_replication_lag
        ):
            return verdict(
                Status.FAIL,
                f"Replica {target.where} is {format_duration(lag)} behind its primary "
                f"(allowed {format_duration(params.max_replication_lag)}); replay is paused "
                "or too slow, or it lost its primary, so failing over now would lose the "
                "writes since then.",
            )

        warnings = []
        if in_recovery and params.max_replication_lag is not None and lag is None:
            warnings.append(
                f"Replica {target.where} has not replayed a transaction since it started, so "
                "its replication lag is unknown; check that it streams from its primary."
            )
        if params.latency_warn is not None and latency > params.latency_warn:
            warnings.append(
                f"PostgreSQL at {target.where} took {milliseconds(latency)} to connect and "
                f"answer (warn above {milliseconds(params.latency_warn)}); the server or the "
                "network is slow."
            )
        if connections_ratio > params.connections_warn:
            warnings.append(
                f"PostgreSQL at {target.where} uses {status['backends']} of "
                f"{max_connections} connections ({connections_ratio:.0%}); new connections "
                "will be refused when it runs out, a client may be leaking connections."
            )
        if warnings:
            return verdict(Status.WARN, " ".join(warnings))

        summary = (
            f"PostgreSQL {version} at {target.where} answered in "
            f"{milliseconds(latency)} as {'a replica' if in_recovery else 'the primary'}"
        )
        if lag is not None:
            summary += f", {format_duration(lag)} behind its primary"
        return verdict(Status.PASS, summary + ".")

    def _failure(self, exc: BaseException, step: str) -> CheckFailed:
        target = self._target
        context = self._context(step=step, error=type(exc).__name__)
        user = f"user {target.user!r}" if target.user else "the configured user"
        for kinds, sentence, permanent in _SERVER_ERRORS:
            if isinstance(exc, kinds):
                said = sentence.format(
                    where=target.where,
                    address=target.address,
                    database=target.database,
                    user=user,
                    error=exc,
                )
                return CheckFailed(said, permanent=permanent, context=context)
        if isinstance(exc, socket.gaierror):
            host = target.address.rpartition(":")[0] or target.address
            return CheckFailed(does_not_resolve("PostgreSQL", host, exc.strerror), context=context)
        if is_refused(exc):
            return CheckFailed(refused("PostgreSQL", target.address), context=context)
        if isinstance(exc, OSError):
            return CheckFailed(unreachable("PostgreSQL", target.address, exc), context=context)
        if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.InterfaceError):
            return CheckFailed(
                f"The connection to PostgreSQL at {target.where} broke while {step}: {exc}; "
                "the server may have restarted or crashed.",
                context=context,
            )
        return CheckFailed(
            f"PostgreSQL at {target.where} failed while {step}: {exc}.",
            context=context,
        )

    def _context(self, **extra: str) -> dict[str, str]:
        return {"target": self._target.url, **extra}


async def _close(connection: asyncpg.Connection) -> None:
    """Close gracefully; drop the socket when that fails or the run is cancelled meanwhile."""
    try:
        await connection.close(timeout=_CLOSE_TIMEOUT)
    except asyncio.CancelledError:
        connection.terminate()
        raise
    except Exception:
        connection.terminate()
