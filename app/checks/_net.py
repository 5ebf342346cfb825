"""What the network checks share: the one parser of PostgreSQL connection URLs (used by the
postgres and wal_archive checks and by the restore drills), and the sentences for a connection
that fails before any protocol is spoken (postgres and redis say the same thing about DNS, a
refused port, an unreachable host and a timeout).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from app.units import format_duration

POSTGRES_SCHEMES = ("postgresql", "postgres")
DEFAULT_POSTGRES_PORT = 5432

# Query parameters of a postgresql:// URL that pg_restore and psql only take from the
# environment when the URL itself is not on their command line (it never is: it holds the
# password).
_LIBPQ_OPTIONS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "options": "PGOPTIONS",
}


def is_postgres_url(dsn: str) -> bool:
    """Whether ``dsn`` is a ``postgresql://`` (or ``postgres://``) URL."""
    return dsn.partition("://")[0].lower() in POSTGRES_SCHEMES


def has_valid_port(url: str) -> bool:
    """False when the URL's port is not a number from 0 to 65535 (multi-host URLs pass)."""
    parts = urlsplit(url)
    if "," in parts.netloc:
        return True
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class PostgresDsn:
    """A parsed ``postgresql://`` URL: where it points, who logs in, the libpq options.

    ``address`` is the host part as written, with the port added when it has none
    (``db.internal:5432``, ``a:5432,b:5433``, ``/run/postgresql``); safe to show, it never holds
    the password. ``host`` and ``port`` are the first host's, for libpq variables and comparisons.
    """

    host: str
    port: int
    user: str | None
    password: str | None
    database: str
    options: Mapping[str, str]
    address: str

    @classmethod
    def parse(cls, dsn: str) -> PostgresDsn:
        """Never raises for a bad port (libpq's default is used); urlsplit's ValueError for a
        malformed address (an unclosed ``[``) is passed on."""
        parts = urlsplit(dsn)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        # Everything after the last "@" is host(s) and port(s), never the password.
        address = parts.netloc.rpartition("@")[2] or query.get("host", "localhost")
        if "," not in address and not address.startswith("/") and not _has_port(address):
            address = f"{address}:{query.get('port', DEFAULT_POSTGRES_PORT)}"
        host = unquote(parts.hostname or "") or query.pop("host", "")
        query.pop("host", None)
        try:
            port = parts.port or int(query.pop("port", str(DEFAULT_POSTGRES_PORT)))
        except ValueError:
            port = DEFAULT_POSTGRES_PORT
        query.pop("port", None)
        user = unquote(parts.username) if parts.username else query.pop("user", None)
        password = unquote(parts.password) if parts.password else query.pop("password", None)
        database = unquote(parts.path.lstrip("/")) or query.pop("dbname", "") or (user or "")
        return cls(host or "localhost", port, user, password, database, query, address)

    @property
    def identity(self) -> tuple[str, int, str]:
        """(host, port, database), with every spelling of this machine folded into one."""
        host = self.host.lower().strip("[]")
        local = ("localhost", "::1", "")
        if host in local or host.startswith(("/", "127.")):
            host = "localhost"
        return host, self.port, self.database

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def libpq_environment(self, database: str, application_name: str) -> dict[str, str]:
        """Variables for pg_restore/psql: the password travels here, never in argv. The
        process's own ``PG*`` variables are dropped so that none of them redirects the program."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            PGHOST=self.host,
            PGPORT=str(self.port),
            PGDATABASE=database,
            PGAPPNAME=application_name,
            PGCONNECT_TIMEOUT=env.get("PGCONNECT_TIMEOUT", "15"),
        )
        if self.user:
            env["PGUSER"] = self.user
        if self.password:
            env["PGPASSWORD"] = self.password
        for option, variable in _LIBPQ_OPTIONS.items():
            if option in self.options:
                env[variable] = self.options[option]
        return env


def _has_port(host: str) -> bool:
    if host.startswith("["):
        return "]:" in host
    return ":" in host


# --- connections that fail before any protocol ---------------------------------------------------


def is_refused(error: BaseException | None) -> bool:
    """A TCP connection refused: nothing listens on that port."""
    return isinstance(error, ConnectionRefusedError) or (
        isinstance(error, OSError) and error.errno == errno.ECONNREFUSED
    )


def does_not_resolve(server: str, host: str, reason: str | None) -> str:
    return (
        f"The {server} host name {host!r} does not resolve ({reason}); the DNS record is "
        "missing or DNS is down."
    )


def refused(server: str, address: str) -> str:
    return (
        f"{server} at {address} refused the connection; the server is down or not listening "
        "on that address and port."
    )


def unreachable(server: str, address: str, error: OSError) -> str:
    return (
        f"Cannot reach {server} at {address}: {error.strerror or error}; the host or the "
        "network path to it is down."
    )


def no_answer(server: str, where: str, timeout: float, step: str, busy: str) -> str:
    """``busy`` says what keeps this kind of server from answering (hung, overloaded, ...)."""
    return (
        f"{server} at {where} did not answer within the {format_duration(timeout)} timeout "
        f"while {step}; {busy}, or packets to it are dropped."
    )


def milliseconds(seconds: float) -> str:
    """A latency as people read it: ``3.2 ms``, ``41 ms``, and durations from 10 s on."""
    if seconds >= 10:
        return format_duration(seconds)
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
