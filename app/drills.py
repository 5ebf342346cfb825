"""Restore drills: restore the newest backup into a scratch server, check the data, time it.

A drill run (:func:`run_drill`) goes through these steps, and always ends with the scratch database
dropped and the temporary directory removed, whether it passed, failed, timed out or was cancelled:

1. remove leftover drill databases from earlier runs that crashed (:func:`cleanup_leftovers`);
2. fetch the backup: a local file or directory is used in place, an ``s3://`` object is downloaded
   into a temporary directory; compressed custom/tar dumps are decompressed there too;
3. create ``drwatch_drill_<name>_<YYYYmmddHHMMSS>`` on the target server and mark it with the
   comment ``drwatch restore drill <run id>``. Only databases with both the prefix and the marker
   are ever dropped by drwatch;
4. restore it: ``pg_restore --jobs N`` (custom, directory), ``pg_restore`` (tar, which cannot run in
   parallel), or ``psql -v ON_ERROR_STOP=1`` for plain SQL, gzip/zstd streams piped through the
   decompressor;
5. run the integrity queries, each in a READ ONLY transaction; ``compare_to_source`` queries also
   run against the live database, read-only;
6. drop the database and return a :class:`DrillReport`.

Passwords never appear on a command line: subprocesses get them through ``PGPASSWORD``.
:func:`run_drill` never raises for a failed drill (the report says what went wrong); it only
re-raises the cancellation of its caller, after cleaning up.

A connection to the drill database stays open for the whole run, so another drwatch process running
:func:`cleanup_leftovers` on the same target never mistakes a running drill for a leftover (it skips
databases that anyone is connected to).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gzip
import logging
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from app import redact
from app.checks.base import collect_secrets
from app.units import Duration, format_duration, format_size

log = logging.getLogger("drwatch.drills")

DATABASE_PREFIX = "drwatch_drill_"
MARKER_PREFIX = "drwatch restore drill "
# PostgreSQL truncates identifiers at 63 bytes; prefix (14) + "_" + timestamp (14) leaves 34.
_MAX_NAME_PART = 63 - len(DATABASE_PREFIX) - 1 - 14
# Plain dumps are read this far to refuse ones that switch databases (pg_dump --create, pg_dumpall):
# psql would follow their \connect to a database drwatch did not create.
_PLAIN_HEAD_BYTES = 256 * 1024
# How long dropping the drill database may take after a timeout or cancellation.
_CLEANUP_TIMEOUT = 120.0

BackupFormat = Literal["custom", "directory", "tar", "plain"]
Compression = Literal["gzip", "zstd"]
DrillStatus = Literal["pass", "fail"]


def _name_pattern() -> str:
    # Imported here so that app.config may import this module at its top without a cycle.
    from app.config import NAME_PATTERN

    return NAME_PATTERN


# --- configuration ---------------------------------------------------------------------------

_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<|=)\s*(-?\d+(?:\.\d+)?)\s*$")
_BETWEEN = re.compile(
    r"^\s*between\s+(-?\d+(?:\.\d+)?)\s+and\s+(-?\d+(?:\.\d+)?)\s*$", re.IGNORECASE
)


@dataclass(frozen=True)
class Expectation:
    """A parsed ``expect:``: ``>= 1``, ``== 42``, ``between 10 and 20``."""

    operator: str
    low: float
    high: float | None = None

    @classmethod
    def parse(cls, text: str) -> Expectation:
        match = _COMPARISON.match(text)
        if match:
            operator = "==" if match.group(1) == "=" else match.group(1)
            return cls(operator, float(match.group(2)))
        match = _BETWEEN.match(text)
        if match:
            low, high = float(match.group(1)), float(match.group(2))
            if low > high:
                raise ValueError(f"{text!r}: the lower bound is greater than the upper bound")
            return cls("between", low, high)
        raise ValueError(
            f"{text!r} is not an expectation; write it like '>= 1', '== 42' or 'between 10 and 20'"
        )

    def holds(self, value: float) -> bool:
        if self.operator == "between":
            assert self.high is not None
            return self.low <= value <= self.high
        return {
            ">=": value >= self.low,
            "<=": value <= self.low,
            ">": value > self.low,
            "<": value < self.low,
            "==": value == self.low,
            "!=": value != self.low,
        }[self.operator]


class CompareToSource(BaseModel):
    """Compare with the same query on the live database.

    Passes when ``|restored - live| <= tolerance * |live|``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tolerance: float = Field(0.0, ge=0.0, le=1.0)


class IntegrityCheck(BaseModel):
    """One named SQL query over the restored database and what its single value must satisfy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sql: str = Field(min_length=1)
    expect: str | None = None
    within_rpo_of_backup: bool = False
    compare_to_source: CompareToSource | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not re.match(_name_pattern(), value):
            raise ValueError(f"{value!r} is not a valid name (letters, digits, '_', '.', '-')")
        return value

    @field_validator("expect")
    @classmethod
    def _valid_expect(cls, value: str | None) -> str | None:
        if value is not None:
            Expectation.parse(value)
        return value

    @model_validator(mode="after")
    def _exactly_one_expectation(self) -> IntegrityCheck:
        chosen = [
            key
            for key, is_set in (
                ("expect", self.expect is not None),
                ("within_rpo_of_backup", self.within_rpo_of_backup),
                ("compare_to_source", self.compare_to_source is not None),
            )
            if is_set
        ]
        if len(chosen) != 1:
            found = ", ".join(chosen) if chosen else "none"
            raise ValueError(
                "set exactly one of expect, within_rpo_of_backup, compare_to_source "
                f"(found: {found})"
            )
        return self

    @property
    def expectation(self) -> str:
        if self.expect is not None:
            return self.expect
        if self.within_rpo_of_backup:
            return "within RPO of backup"
        assert self.compare_to_source is not None
        return f"within {self.compare_to_source.tolerance:.0%} of source"


class DrillSpec(BaseModel):
    """One entry of ``drills:``. Unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    source: str = Field(description="Name of the backup_files or s3 check whose backup to restore.")
    target_dsn: SecretStr = Field(description="Admin connection to a scratch PostgreSQL server.")
    source_dsn: SecretStr | None = Field(
        None, description="The live database, used read-only by compare_to_source queries."
    )
    schedule: str = "0 3 1 * *"
    rto: Duration = 4 * 3600.0
    rpo: Duration | None = Field(
        None, description="For within_rpo_of_backup; defaults to the source check's RPO."
    )
    jobs: int = Field(2, ge=1, le=64)
    timeout: Duration = 6 * 3600.0
    integrity: tuple[IntegrityCheck, ...] = ()

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not re.match(_name_pattern(), value):
            raise ValueError(f"{value!r} is not a valid name (letters, digits, '_', '.', '-')")
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone=UTC)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a cron expression: {exc}") from None
        return value

    @field_validator("target_dsn", "source_dsn")
    @classmethod
    def _valid_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in ("postgres", "postgresql"):
                raise ValueError("expected a postgresql://user:password@host:port/database URL")
            try:
                _Server.parse(value.get_secret_value())
            except ValueError:
                raise ValueError("not a valid postgresql:// URL (check the port)") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DrillSpec:
        if self.timeout <= 0:
            raise ValueError("timeout must be greater than zero")
        if self.rto <= 0:
            raise ValueError("rto must be greater than zero")
        names = [check.name for check in self.integrity]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate integrity check names: {', '.join(duplicates)}")
        if self.source_dsn is None and any(c.compare_to_source for c in self.integrity):
            raise ValueError("compare_to_source needs source_dsn (the live database, read-only)")
        return self

    def secrets(self) -> list[str]:
        """The DSNs and their passwords, so logs and outputs can be scrubbed of them."""
        return collect_secrets(self)


# --- the backup to restore ------------------------------------------------------------------


@dataclass(frozen=True)
class BackupRef:
    """The backup a drill restores: a local path or ``s3://bucket/key``, and when it was taken.

    ``format`` and ``compression`` are detected from the file when left as None.
    ``rpo_seconds`` is the source's RPO, used by ``within_rpo_of_backup`` when the drill sets none.
    """

    location: str
    backup_time: datetime
    size_bytes: int | None = None
    format: BackupFormat | None = None
    compression: Compression | None = None
    rpo_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.backup_time.tzinfo is None:
            raise ValueError("backup_time must be timezone-aware")

    @classmethod
    def from_details(cls, details: Mapping[str, Any]) -> BackupRef:
        """From a backup check's Result details (``location``, ``last_backup_at``, ...).

        Raises ValueError when the details name no backup.
        """
        location = details.get("location")
        taken = details.get("last_backup_at")
        if not location or not taken:
            raise ValueError("the backup source has not reported a backup (location and time)")
        backup_time = taken if isinstance(taken, datetime) else datetime.fromisoformat(str(taken))
        if backup_time.tzinfo is None:
            backup_time = backup_time.replace(tzinfo=UTC)
        size = details.get("size_bytes")
        rpo = details.get("rpo_seconds")
        return cls(
            location=str(location),
            backup_time=backup_time,
            size_bytes=int(size) if size is not None else None,
            rpo_seconds=float(rpo) if rpo is not None else None,
        )


_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _inner_format(head: bytes) -> BackupFormat:
    if head.startswith(b"PGDMP"):
        return "custom"
    if head[257:262] == b"ustar":
        return "tar"
    return "plain"


async def detect_format(path: Path) -> tuple[BackupFormat, Compression | None]:
    """The dump format of ``path`` from its contents: custom dumps start with ``PGDMP``, a
    directory dump has ``toc.dat``, tar archives say ``ustar``; gzip/zstd streams are looked into.
    Raises FileNotFoundError or ValueError (a directory that is not a dump).
    """
    if path.is_dir():  # noqa: ASYNC240 - one stat, not worth a thread
        if (path / "toc.dat").is_file():
            return "directory", None
        raise ValueError(f"{path} is a directory without toc.dat, not a pg_dump directory dump")
    head = await _peek(path, None, 512)
    if head.startswith(_GZIP_MAGIC):
        return _inner_format(await _peek(path, "gzip", 512)), "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return _inner_format(await _peek(path, "zstd", 512)), "zstd"
    return _inner_format(head), None


async def _peek(path: Path, compression: Compression | None, size: int) -> bytes:
    """The first ``size`` bytes of the (decompressed) file."""
    if compression is None:
        with path.open("rb") as handle:
            return handle.read(size)
    if compression == "gzip":

        def read_gzip() -> bytes:
            with gzip.open(path, "rb") as handle:
                try:
                    return handle.read(size)
                except (OSError, EOFError):
                    return b""

        return await asyncio.to_thread(read_gzip)
    proc = await asyncio.create_subprocess_exec(
        _tool("zstd"),
        "-dc",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        return await proc.stdout.read(size)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


# --- the report -------------------------------------------------------------------------------


@dataclass
class IntegrityResult:
    name: str
    passed: bool
    observed: Any
    expectation: str
    message: str
    source_value: Any = None


@dataclass
class DrillReport:
    """What one drill run did and found. ``as_dict()`` is JSON-serializable."""

    run_id: str
    drill: str
    database: str
    started_at: datetime
    finished_at: datetime | None = None
    backup_location: str = ""
    backup_time: datetime | None = None
    backup_size_bytes: int | None = None
    backup_format: str | None = None
    restore_seconds: float | None = None
    total_seconds: float | None = None
    rto_seconds: float = 0.0
    within_rto: bool | None = None
    integrity: list[IntegrityResult] = field(default_factory=list)
    data_loss_seconds: float | None = None
    status: DrillStatus = "fail"
    message: str = ""
    database_dropped: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {key: _json_value(value) for key, value in data.items()}


def render_report(report: DrillReport) -> str:
    """The report as a few lines of plain text, for ``drwatch drill run``."""
    lines = [
        f"drill {report.drill}: {report.status.upper()} (run {report.run_id})",
        f"  {report.message}",
        f"  backup: {report.backup_location or '-'}"
        + (f" taken {report.backup_time.isoformat()}" if report.backup_time else "")
        + (f", {format_size(report.backup_size_bytes)}" if report.backup_size_bytes else "")
        + (f", {report.backup_format}" if report.backup_format else ""),
    ]
    if report.total_seconds is not None:
        restore = (
            format_duration(report.restore_seconds) if report.restore_seconds is not None else "-"
        )
        lines.append(
            f"  restore {restore}, total {format_duration(report.total_seconds)}, "
            f"RTO {format_duration(report.rto_seconds)}"
        )
    if report.data_loss_seconds is not None:
        lines.append(f"  data-loss window: {format_duration(report.data_loss_seconds)}")
    for result in report.integrity:
        mark = "+" if result.passed else "-"
        lines.append(f"  [{mark}] {result.name}: {result.message}")
    return "\n".join(lines)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# --- connections and subprocesses --------------------------------------------------------------


@dataclass(frozen=True)
class _Server:
    """A parsed postgresql:// URL: enough for libpq environment variables and comparisons."""

    host: str
    port: int
    user: str | None
    password: str | None
    database: str
    options: Mapping[str, str]

    @classmethod
    def parse(cls, dsn: str) -> _Server:
        parts = urlsplit(dsn)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        host = unquote(parts.hostname or "") or query.pop("host", "")
        query.pop("host", None)
        try:
            port = parts.port or int(query.pop("port", "5432"))
        except ValueError:
            port = 5432
        query.pop("port", None)
        user = unquote(parts.username) if parts.username else query.pop("user", None)
        password = unquote(parts.password) if parts.password else query.pop("password", None)
        database = unquote(parts.path.lstrip("/")) or query.pop("dbname", "") or (user or "")
        return cls(host or "localhost", port, user, password, database, query)

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

    def environment(self, database: str) -> dict[str, str]:
        """libpq variables for pg_restore/psql: the password travels here, never in argv."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            PGHOST=self.host,
            PGPORT=str(self.port),
            PGDATABASE=database,
            PGAPPNAME="drwatch-drill",
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


def _tool(name: str) -> str:
    """A PostgreSQL client program: from DRWATCH_PG_BIN, the newest installed version, or PATH."""
    configured = os.environ.get("DRWATCH_PG_BIN")
    if configured and (Path(configured) / name).is_file():
        return str(Path(configured) / name)
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
        reverse=True,
    )
    if versions:
        return str(versions[0])
    return shutil.which(name) or name


_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] = libc.prctl
    return prctl


_prctl = _load_prctl()


def _child_setup() -> None:
    # Runs in the child before exec: if drwatch dies (kill -9, OOM), the restore dies with it
    # instead of writing on into a database nobody watches.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


async def _spawn(
    args: Sequence[str], env: Mapping[str, str], *, stdin: int | None = None, stdout: int | None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *args,
        stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        start_new_session=True,  # its own process group, so pg_restore's workers die with it
        preexec_fn=_child_setup,
    )


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class _Outcome:
    program: str
    returncode: int
    stderr: str

    @property
    def last_error(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
        chosen = (errors or lines or [f"exit code {self.returncode}"])[0]
        return redact.scrub(chosen)[:400]


async def _run(
    steps: Sequence[tuple[str, Sequence[str]]], env: Mapping[str, str]
) -> list[_Outcome]:
    """Run programs as a pipeline (stdout of each into the next); kill them all if cancelled."""
    procs: list[asyncio.subprocess.Process] = []
    try:
        previous_read: int | None = None
        for index, (_, args) in enumerate(steps):
            last = index == len(steps) - 1
            read_end, write_end = (None, None) if last else os.pipe()
            try:
                proc = await _spawn(
                    args,
                    env,
                    stdin=previous_read,
                    stdout=asyncio.subprocess.DEVNULL if last else write_end,
                )
            finally:
                for fd in (previous_read, write_end):
                    if fd is not None:
                        os.close(fd)
                previous_read = None
            procs.append(proc)
            previous_read = read_end
        results = await asyncio.gather(*(p.communicate() for p in procs))
    except BaseException:
        for proc in procs:
            _kill_group(proc)
        for proc in procs:
            with contextlib.suppress(Exception):
                await asyncio.shield(proc.wait())
        raise
    return [
        _Outcome(name, proc.returncode or 0, stderr.decode(errors="replace"))
        for (name, _), proc, (_, stderr) in zip(steps, procs, results, strict=True)
    ]


async def _connect(dsn: str, *, database: str | None = None, **kwargs: Any) -> Any:
    return await asyncpg.connect(dsn=dsn, database=database, timeout=15, **kwargs)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def database_name(drill: str, when: datetime) -> str:
    """``drwatch_drill_<sanitized drill name>_<YYYYmmddHHMMSS>``: always a plain identifier."""
    part = re.sub(r"[^a-z0-9_]+", "_", drill.lower()).strip("_")[:_MAX_NAME_PART] or "drill"
    return f"{DATABASE_PREFIX}{part}_{when.astimezone(UTC):%Y%m%d%H%M%S}"


# --- safety --------------------------------------------------------------------------------------


async def cleanup_leftovers(
    target_dsn: str | SecretStr, *, progress: Callable[[str], None] | None = None
) -> list[str]:
    """Drop drill databases left behind by runs that crashed; returns the names dropped.

    Only databases whose name starts with ``drwatch_drill_`` AND whose comment is drwatch's marker
    are candidates, and of those only ones nobody is connected to (a running drill keeps a
    connection open). A database someone connects to meanwhile makes DROP fail; it is skipped.
    """
    dsn = target_dsn.get_secret_value() if isinstance(target_dsn, SecretStr) else target_dsn
    dropped: list[str] = []
    conn = await _connect(dsn)
    try:
        rows = await conn.fetch(
            r"""
            SELECT d.datname
            FROM pg_database d
            WHERE d.datname LIKE 'drwatch\_drill\_%'
              AND shobj_description(d.oid, 'pg_database') LIKE $1
              AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)
            ORDER BY d.datname
            """,
            MARKER_PREFIX.replace("_", r"\_") + "%",
        )
        for row in rows:
            name = row["datname"]
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)}")
            except asyncpg.PostgresError as exc:
                log.info("leftover drill database in use, kept", extra={"database": name})
                _say(progress, f"kept leftover database {name}: {exc}")
                continue
            dropped.append(name)
            _say(progress, f"removed leftover database {name}")
    finally:
        await conn.close()
    return dropped


def check_targets(
    drills: Iterable[DrillSpec], postgres_dsns: Iterable[str | SecretStr]
) -> list[tuple[str, str]]:
    """Config errors (field path, message) for drills whose target is a production database:
    the same host, port and database as a monitored ``postgres`` check, or as the drill's own
    ``source_dsn``. ``localhost``, ``127.0.0.1`` and ``::1`` count as the same host.
    """
    production: list[tuple[str, int, str]] = []
    for dsn in postgres_dsns:
        text = dsn.get_secret_value() if isinstance(dsn, SecretStr) else dsn
        with contextlib.suppress(ValueError):
            production.append(_Server.parse(text).identity)
    errors: list[tuple[str, str]] = []
    for index, drill in enumerate(drills):
        try:
            target = _Server.parse(drill.target_dsn.get_secret_value()).identity
        except ValueError:
            continue
        where = f"{target[0]}:{target[1]}/{target[2]}"
        if target in production:
            errors.append(
                (
                    f"drills.{index}.target_dsn",
                    f"points at {where}, the database of a monitored postgres check; a drill "
                    "creates and drops databases, so give it a scratch server",
                )
            )
        elif drill.source_dsn is not None:
            with contextlib.suppress(ValueError):
                if _Server.parse(drill.source_dsn.get_secret_value()).identity == target:
                    errors.append(
                        (
                            f"drills.{index}.target_dsn",
                            f"points at {where}, the drill's own source database; give it a "
                            "scratch server",
                        )
                    )
    return errors


# --- a drill run ---------------------------------------------------------------------------------


class DrillFailed(Exception):
    """A step of the drill failed; ``message`` is one sentence for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _say(progress: Callable[[str], None] | None, line: str) -> None:
    line = redact.scrub(line)
    log.info(line)
    if progress is not None:
        progress(line)


S3ClientFactory = Callable[[], Any]


async def _download_s3(
    location: str, directory: Path, factory: S3ClientFactory | None
) -> tuple[Path, int]:
    parts = urlsplit(location)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise DrillFailed(f"{location} is not an s3://bucket/key location.")
    if factory is None:
        import boto3

        def factory() -> Any:
            return boto3.client("s3")

    destination = directory / (Path(key).name or "backup")
    stop = threading.Event()

    def download() -> int:
        client = factory()
        response = client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        written = 0
        try:
            with destination.open("wb") as handle:
                for chunk in body.iter_chunks(chunk_size=1024 * 1024):
                    if stop.is_set():
                        raise asyncio.CancelledError
                    handle.write(chunk)
                    written += len(chunk)
        finally:
            body.close()
        return written

    try:
        written = await asyncio.to_thread(download)
    except asyncio.CancelledError:
        stop.set()
        raise
    except DrillFailed:
        raise
    except Exception as exc:
        raise DrillFailed(
            f"Could not download {location}: {redact.scrub(str(exc))[:300]}; check the bucket, "
            "key and credentials."
        ) from None
    return destination, written


async def _decompress_to(path: Path, compression: Compression, destination: Path) -> None:
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        proc = await _spawn(
            [_tool("zstd") if compression == "zstd" else "gzip", "-dc", str(path)],
            os.environ,
            stdout=fd,
        )
    finally:
        os.close(fd)
    try:
        _, stderr = await proc.communicate()
    except BaseException:
        _kill_group(proc)
        await asyncio.shield(proc.wait())
        raise
    if proc.returncode:
        message = stderr.decode(errors="replace").strip().splitlines()
        raise DrillFailed(
            f"The {compression} backup does not decompress ({message[-1] if message else ''}); "
            "the file is corrupt or truncated."
        )


class _Run:
    """State of one drill run, so cleanup knows what exists."""

    def __init__(
        self,
        spec: DrillSpec,
        backup: BackupRef,
        report: DrillReport,
        progress: Callable[[str], None] | None,
        s3_client_factory: S3ClientFactory | None,
    ) -> None:
        self.spec = spec
        self.backup = backup
        self.report = report
        self.progress = progress
        self.s3_client_factory = s3_client_factory
        self.target = _Server.parse(spec.target_dsn.get_secret_value())
        self.created = False
        self.guard: Any = None
        self.step = "starting"

    def say(self, line: str) -> None:
        _say(self.progress, line)

    async def execute(self, workdir: Path) -> None:
        spec, report = self.spec, self.report
        self.step = "removing leftovers"
        try:
            await cleanup_leftovers(spec.target_dsn, progress=self.progress)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise DrillFailed(
                f"Cannot connect to the drill target {self.target.where}: "
                f"{redact.scrub(str(exc))[:300]}; check target_dsn and that the scratch server "
                "is up."
            ) from None

        self.step = "fetching"
        self.say(f"fetching {self.backup.location}")
        path, compression, dump_format = await self.fetch(workdir)

        self.step = "creating"
        self.say(f"creating database {report.database} on {self.target.where}")
        await self.create_database()

        self.step = "restoring"
        jobs = spec.jobs if dump_format in ("custom", "directory") else 1
        self.say(f"restoring {report.backup_format} dump with {jobs} job(s)")
        restore_started = time.perf_counter()
        await self.restore(path, dump_format, compression, jobs)
        report.restore_seconds = time.perf_counter() - restore_started

        self.step = "checking"
        self.say(f"checking integrity ({len(spec.integrity)} queries)")
        await self.check_integrity()

    async def fetch(self, workdir: Path) -> tuple[Path, Compression | None, BackupFormat]:
        location = self.backup.location
        if location.startswith("s3://"):
            path, written = await _download_s3(location, workdir, self.s3_client_factory)
            if self.report.backup_size_bytes is None:
                self.report.backup_size_bytes = written
        else:
            path = Path(location.removeprefix("file://"))
            if not path.exists():
                raise DrillFailed(
                    f"The backup {location} does not exist; the backup source may have pruned it "
                    "or the path is not mounted here."
                )
            if self.report.backup_size_bytes is None and path.is_file():
                self.report.backup_size_bytes = path.stat().st_size
        if self.backup.format is not None:
            dump_format: BackupFormat = self.backup.format
            compression = self.backup.compression
        else:
            try:
                dump_format, compression = await detect_format(path)
            except (OSError, ValueError) as exc:
                raise DrillFailed(f"Cannot read the backup {location}: {exc}.") from None
        self.report.backup_format = dump_format + (f"+{compression}" if compression else "")
        if compression is not None and dump_format != "plain":
            # pg_restore reads neither gzip nor zstd streams, and --jobs needs a seekable file.
            plain_name = workdir / f"decompressed.{dump_format}"
            self.say(f"decompressing {compression} into a temporary file")
            await _decompress_to(path, compression, plain_name)
            path, compression = plain_name, None
        if dump_format == "plain":
            head = await _peek(path, compression, _PLAIN_HEAD_BYTES)
            if re.search(rb"^\s*(\\connect|\\c\s|CREATE DATABASE)", head, re.MULTILINE):
                raise DrillFailed(
                    f"The plain SQL backup {location} creates or switches databases (made with "
                    "pg_dump --create or pg_dumpall); drwatch restores only single-database "
                    "dumps so that nothing is written outside its drill database."
                )
        return path, compression, dump_format

    async def create_database(self) -> None:
        name = self.report.database
        conn = await _connect(self.spec.target_dsn.get_secret_value())
        try:
            await conn.execute(f"CREATE DATABASE {_quote_ident(name)} TEMPLATE template0")
            self.created = True
            # Connect before marking it: once marked, someone is always connected until the end,
            # so a concurrent cleanup_leftovers elsewhere never takes it for a leftover.
            self.guard = await _connect(self.spec.target_dsn.get_secret_value(), database=name)
            marker = f"{MARKER_PREFIX}{self.report.run_id}"
            await conn.execute(
                f"COMMENT ON DATABASE {_quote_ident(name)} IS {_quote_literal(marker)}"
            )
        except asyncpg.PostgresError as exc:
            raise DrillFailed(
                f"Cannot create the drill database on {self.target.where}: {exc}; the target_dsn "
                "user needs CREATEDB."
            ) from None
        finally:
            await conn.close()

    async def restore(
        self, path: Path, dump_format: BackupFormat, compression: Compression | None, jobs: int
    ) -> None:
        env = self.target.environment(self.report.database)
        if dump_format == "plain":
            psql = [_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.report.database]
            if compression is None:
                steps: list[tuple[str, Sequence[str]]] = [("psql", [*psql, "-f", str(path)])]
            else:
                tool = _tool("zstd") if compression == "zstd" else "gzip"
                steps = [(compression, [tool, "-dc", str(path)]), ("psql", psql)]
        else:
            restore = [
                _tool("pg_restore"),
                "--no-owner",
                "--no-privileges",
                "-d",
                self.report.database,
            ]
            if jobs > 1:
                restore[1:1] = ["--jobs", str(jobs)]
            steps = [("pg_restore", [*restore, str(path)])]
        outcomes = await _run(steps, env)
        # The consumer's error explains more than the decompressor's broken pipe.
        for outcome in reversed(outcomes):
            if outcome.returncode:
                raise DrillFailed(
                    f"{outcome.program} failed ({outcome.last_error}); the backup is corrupt or "
                    "incomplete, or needs something the scratch server lacks (an extension, "
                    "a role, a newer version)."
                )

    async def check_integrity(self) -> None:
        source: Any = None
        source_error: str | None = None
        newest_rows: list[datetime] = []
        try:
            for check in self.spec.integrity:
                result = await self.run_check(check)
                if check.compare_to_source is not None and result.passed is not False:
                    if source is None and source_error is None:
                        try:
                            source = await self.connect_source()
                        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                            source_error = redact.scrub(str(exc))[:300]
                    result = await self.compare(check, result, source, source_error)
                if check.within_rpo_of_backup and isinstance(result.observed, datetime):
                    newest_rows.append(result.observed)
                self.report.integrity.append(result)
        finally:
            if source is not None:
                await source.close()
        if newest_rows:
            loss = (self.backup.backup_time - max(newest_rows)).total_seconds()
            self.report.data_loss_seconds = max(0.0, loss)

    async def run_check(self, check: IntegrityCheck) -> IntegrityResult:
        """The restored database's value, judged unless the check compares with the source."""
        try:
            async with self.guard.transaction(readonly=True):
                value = await self.guard.fetchval(check.sql)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return IntegrityResult(
                check.name,
                False,
                None,
                check.expectation,
                f"The query failed on the restored database: {redact.scrub(str(exc))[:300]}; "
                "the table may be missing from the backup, or the query is wrong.",
            )
        if check.expect is not None:
            return self.judge_expect(check, value)
        if check.within_rpo_of_backup:
            return self.judge_freshness(check, value)
        # compare_to_source: judged once the source's value is known.
        return IntegrityResult(check.name, True, value, check.expectation, "")

    def judge_expect(self, check: IntegrityCheck, value: Any) -> IntegrityResult:
        assert check.expect is not None
        number = _number(value)
        if number is None:
            return IntegrityResult(
                check.name,
                False,
                value,
                check.expect,
                f"The query returned {value!r}, not a number; expected {check.expect}.",
            )
        if Expectation.parse(check.expect).holds(number):
            return IntegrityResult(
                check.name, True, value, check.expect, f"{_show(value)} {check.expect}"
            )
        return IntegrityResult(
            check.name,
            False,
            value,
            check.expect,
            f"Observed {_show(value)}, expected {check.expect}; the backup may be missing data.",
        )

    def judge_freshness(self, check: IntegrityCheck, value: Any) -> IntegrityResult:
        newest = _timestamp(value)
        rpo = self.spec.rpo if self.spec.rpo is not None else self.backup.rpo_seconds
        if newest is None:
            return IntegrityResult(
                check.name,
                False,
                value,
                check.expectation,
                f"The query returned {value!r}, not a timestamp; the table may be empty in the "
                "backup.",
            )
        if rpo is None:
            return IntegrityResult(
                check.name,
                False,
                newest,
                check.expectation,
                "No RPO is known for this drill's source; set rpo on the drill.",
            )
        age = (self.backup.backup_time - newest).total_seconds()
        if age <= rpo:
            return IntegrityResult(
                check.name,
                True,
                newest,
                check.expectation,
                f"Newest row is {format_duration(max(age, 0.0))} older than the backup "
                f"(RPO {format_duration(rpo)}).",
            )
        return IntegrityResult(
            check.name,
            False,
            newest,
            check.expectation,
            f"Newest row is {format_duration(age)} older than the backup (RPO "
            f"{format_duration(rpo)}); the application stopped writing, or the backup holds "
            "stale data.",
        )

    async def connect_source(self) -> Any:
        assert self.spec.source_dsn is not None
        # Read-only by default for the session and per transaction: a drill never writes there.
        return await _connect(
            self.spec.source_dsn.get_secret_value(),
            server_settings={
                "default_transaction_read_only": "on",
                "application_name": "drwatch-drill",
            },
        )

    async def compare(
        self, check: IntegrityCheck, restored: IntegrityResult, source: Any, error: str | None
    ) -> IntegrityResult:
        assert check.compare_to_source is not None
        tolerance = check.compare_to_source.tolerance
        if source is None:
            restored.passed = False
            restored.message = f"Cannot connect to the source database: {error}."
            return restored
        try:
            async with source.transaction(readonly=True):
                live = await source.fetchval(check.sql)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            restored.passed = False
            restored.message = (
                f"The query failed on the source database: {redact.scrub(str(exc))[:300]}."
            )
            return restored
        restored.source_value = live
        restored_number, live_number = _number(restored.observed), _number(live)
        if restored_number is None or live_number is None:
            restored.passed = False
            restored.message = (
                f"Cannot compare {restored.observed!r} with the source's {live!r}: both must be "
                "numbers."
            )
            return restored
        difference = abs(restored_number - live_number)
        allowed = tolerance * abs(live_number)
        restored.passed = difference <= allowed or math.isclose(restored_number, live_number)
        relative = difference / abs(live_number) if live_number else math.inf
        if restored.passed:
            restored.message = (
                f"{_show(restored.observed)} vs {_show(live)} on the source "
                f"(tolerance {tolerance:.0%})."
            )
        else:
            restored.message = (
                f"Restored {_show(restored.observed)} vs {_show(live)} on the source, "
                f"{relative:.1%} apart (tolerance {tolerance:.0%}); the backup is missing data "
                "or is older than expected."
            )
        return restored

    async def drop_database(self) -> None:
        if self.guard is not None:
            with contextlib.suppress(Exception):
                await self.guard.close(timeout=5)
            self.guard = None
        if not self.created:
            return
        name = self.report.database
        conn = await _connect(self.spec.target_dsn.get_secret_value())
        try:
            force = " WITH (FORCE)" if conn.get_server_version().major >= 13 else ""
            # Our own database by name: FORCE ends restore backends that a kill left behind.
            await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)}{force}")
        finally:
            await conn.close()
        self.created = False
        self.report.database_dropped = True


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    return None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _show(value: Any) -> str:
    shown = _json_value(value)
    return f"{shown:g}" if isinstance(shown, float) else str(shown)


async def run_drill(
    spec: DrillSpec,
    backup: BackupRef,
    *,
    progress: Callable[[str], None] | None = None,
    s3_client_factory: S3ClientFactory | None = None,
    run_id: str | None = None,
) -> DrillReport:
    """Restore ``backup`` into a fresh database on ``spec.target_dsn``, check it, drop it.

    Returns the report; never raises for a failed drill. Cancelling the caller cancels the drill
    (subprocesses killed, database dropped) and re-raises CancelledError. ``s3_client_factory``
    returns a boto3-compatible S3 client (``get_object``) for ``s3://`` backups.
    """
    redact.register(spec.secrets())
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    report = DrillReport(
        run_id=run_id or uuid.uuid4().hex,
        drill=spec.name,
        database=database_name(spec.name, started_at),
        started_at=started_at,
        backup_location=backup.location,
        backup_time=backup.backup_time,
        backup_size_bytes=backup.size_bytes,
        rto_seconds=spec.rto,
    )
    run = _Run(spec, backup, report, progress, s3_client_factory)
    failure: str | None = None
    workdir = Path(tempfile.mkdtemp(prefix="drwatch-drill-"))
    try:
        deadline = asyncio.timeout(spec.timeout)
        try:
            async with deadline:
                await run.execute(workdir)
        except TimeoutError as exc:
            if deadline.expired():
                failure = (
                    f"The drill did not finish within its {format_duration(spec.timeout)} "
                    f"timeout (it was {run.step}); it was cancelled. The restore is slower than "
                    "planned or the scratch server is too small."
                )
            else:
                failure = f"The drill timed out while {run.step}: {exc or 'no answer'}."
        except DrillFailed as exc:
            failure = exc.message
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            failure = (
                f"The drill failed while {run.step}: {type(exc).__name__}: "
                f"{redact.scrub(str(exc))[:300]}."
            )
    finally:
        run.say("cleaning up")
        cleanup_error: str | None = None
        try:
            async with asyncio.timeout(_CLEANUP_TIMEOUT):
                await asyncio.shield(run.drop_database())
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            cleanup_error = redact.scrub(str(exc))[:300] or type(exc).__name__
            log.warning(
                "could not drop the drill database",
                extra={"database": report.database, "error": cleanup_error},
            )
        shutil.rmtree(workdir, ignore_errors=True)
    report.finished_at = datetime.now(UTC)
    report.total_seconds = time.perf_counter() - started
    report.within_rto = report.total_seconds <= spec.rto
    failed_checks = [r for r in report.integrity if not r.passed]
    if failure is None and failed_checks:
        first = failed_checks[0]
        more = f" ({len(failed_checks) - 1} more failed)" if len(failed_checks) > 1 else ""
        failure = f"Integrity check {first.name!r} failed{more}: {first.message}"
    if failure is None and cleanup_error is not None:
        failure = (
            f"The drill database {report.database} could not be dropped ({cleanup_error}); the "
            "next run removes it."
        )
    if failure is not None:
        report.status = "fail"
        report.message = redact.scrub(failure)
    else:
        report.status = "pass"
        size = f" ({format_size(report.backup_size_bytes)})" if report.backup_size_bytes else ""
        taken = f"{backup.backup_time.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        rto_note = (
            f"within the RTO of {format_duration(spec.rto)}"
            if report.within_rto
            else f"over the RTO of {format_duration(spec.rto)}: recovery would take longer "
            "than the plan allows"
        )
        report.message = (
            f"Restored the {taken} backup{size} in {format_duration(report.total_seconds)}, "
            f"{rto_note}; "
            + (
                f"all {len(report.integrity)} integrity checks passed."
                if report.integrity
                else "no integrity checks are configured, so only the restore itself was tested."
            )
        )
    log.info(
        "restore drill finished",
        extra={"drill": spec.name, "status": report.status, "run_id": report.run_id},
    )
    return report


# --- exactly once across replicas ----------------------------------------------------------------


class DrillStore(Protocol):
    """The part of the state store a drill uses (implemented by app.store.repository.Store)."""

    async def try_acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool: ...

    async def renew_lease(self, name: str, owner: str, ttl_seconds: float) -> bool: ...

    async def release_lease(self, name: str, owner: str) -> None: ...

    async def start_drill_run(
        self, run_id: str, drill: str, started_at: datetime, owner: str
    ) -> None: ...

    async def finish_drill_run(self, run_id: str, report: dict[str, Any]) -> None: ...


LEASE_TTL = 60.0


def lease_name(drill: str) -> str:
    return f"drill:{drill}"


async def run_drill_with_lease(
    store: DrillStore,
    spec: DrillSpec,
    backup: BackupRef,
    owner: str,
    *,
    progress: Callable[[str], None] | None = None,
    s3_client_factory: S3ClientFactory | None = None,
    run_id: str | None = None,
    lease_held: bool = False,
    run_recorded: bool = False,
    lease_ttl: float = LEASE_TTL,
) -> DrillReport | None:
    """Run the drill if this process gets its lease; None when another process holds it.

    The run is recorded in the store (start, then the report). The lease is renewed every third
    of its TTL; if it is lost, the drill is cancelled so that two processes never restore at once.
    ``lease_held`` says the caller acquired the lease already (``POST /api/drills/{name}/run``
    does, to answer 409 at once); it is released here either way. ``run_recorded`` says the
    caller recorded the start of ``run_id`` already.
    """
    name = lease_name(spec.name)
    if not lease_held and not await store.try_acquire_lease(name, owner, lease_ttl):
        return None
    run_id = run_id or uuid.uuid4().hex
    try:
        if not run_recorded:
            await store.start_drill_run(run_id, spec.name, datetime.now(UTC), owner)
        drill = asyncio.ensure_future(
            run_drill(
                spec,
                backup,
                progress=progress,
                s3_client_factory=s3_client_factory,
                run_id=run_id,
            )
        )
        lost = asyncio.Event()

        async def keep_lease() -> None:
            while True:
                await asyncio.sleep(lease_ttl / 3)
                try:
                    renewed = await store.renew_lease(name, owner, lease_ttl)
                except Exception:
                    log.warning("could not renew the drill lease", exc_info=True)
                    continue
                if not renewed:
                    lost.set()
                    drill.cancel()
                    return

        keeper = asyncio.ensure_future(keep_lease())
        try:
            report = await drill
        except asyncio.CancelledError:
            if lost.is_set():
                report = _interrupted(
                    run_id,
                    spec,
                    backup,
                    "The drill lost its lease (the state store was unreachable) and was "
                    "cancelled so that no other drwatch process restores at the same time.",
                )
            else:
                # drwatch is shutting down: the run is over, say so in its history.
                drill.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.shield(drill)
                interrupted = _interrupted(
                    run_id,
                    spec,
                    backup,
                    "The drill was cancelled before it finished (drwatch stopped); it runs "
                    "again at its next scheduled time.",
                )
                with contextlib.suppress(Exception):
                    await asyncio.shield(store.finish_drill_run(run_id, interrupted.as_dict()))
                raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        try:
            await store.finish_drill_run(run_id, report.as_dict())
        except Exception:
            # The report still reaches the caller (CLI, metrics); only the history misses it.
            log.warning("could not record the drill report", exc_info=True)
        return report
    finally:
        with contextlib.suppress(Exception):
            await store.release_lease(name, owner)


def _interrupted(run_id: str, spec: DrillSpec, backup: BackupRef, message: str) -> DrillReport:
    now = datetime.now(UTC)
    return DrillReport(
        run_id=run_id,
        drill=spec.name,
        database="",
        started_at=now,
        finished_at=now,
        backup_location=backup.location,
        backup_time=backup.backup_time,
        rto_seconds=spec.rto,
        message=message,
    )


# --- the service's view: start, schedule, remember ---------------------------------------------


class DrillBusy(Exception):
    """The drill is already running, here or on another replica (its lease is held)."""


class UnknownDrill(KeyError):
    """No drill with that name is configured."""


BackupResolver = Callable[[DrillSpec], BackupRef]
"""Returns the backup a drill should restore now; raises ValueError when there is none."""


def backup_from_results(
    last_details: Callable[[str], Mapping[str, Any] | None],
) -> BackupResolver:
    """A resolver over the source checks' last Result details (``location``, ``last_backup_at``,
    ``size_bytes``, ``rpo_seconds``, ``verified``), e.g. read from the monitor's snapshot.
    """

    def resolve(spec: DrillSpec) -> BackupRef:
        details = last_details(spec.source)
        if details is None:
            raise ValueError(
                f"The backup source {spec.source!r} has not reported a backup yet; the drill "
                "runs once it has."
            )
        if details.get("verified") is False:
            raise ValueError(
                f"The newest backup of {spec.source!r} failed verification; fix the backup "
                "before drilling a restore of it."
            )
        try:
            return BackupRef.from_details(details)
        except ValueError as exc:
            raise ValueError(f"The backup source {spec.source!r}: {exc}.") from None

    return resolve


class DrillService:
    """The configured drills of one drwatch process: started by cron jobs, the API or the CLI.

    Each run takes the drill's lease in the state store first, so across replicas sharing a
    PostgreSQL store a drill runs once at a time. ``last_reports`` and ``runs_total`` hold what
    this process saw, for metrics.
    """

    def __init__(
        self,
        specs: Iterable[DrillSpec],
        store: DrillStore,
        owner: str,
        backup_for: BackupResolver,
        *,
        s3_client_factory: S3ClientFactory | None = None,
        lease_ttl: float = LEASE_TTL,
    ) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.store = store
        self.owner = owner
        self.backup_for = backup_for
        self.s3_client_factory = s3_client_factory
        self.lease_ttl = lease_ttl
        self.running: dict[str, str] = {}
        self.last_reports: dict[str, DrillReport] = {}
        self.runs_total: dict[tuple[str, str], int] = {}
        self._tasks: set[asyncio.Task[DrillReport | None]] = set()

    def spec(self, name: str) -> DrillSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise UnknownDrill(name) from None

    async def start(self, name: str) -> str:
        """Start a drill in the background and return its run id.

        Raises UnknownDrill, or DrillBusy when it runs already (here or on another replica).
        """
        spec = self.spec(name)
        if name in self.running:
            raise DrillBusy(name)
        run_id = uuid.uuid4().hex
        # Claimed before the first await, so two requests here cannot both pass.
        self.running[name] = run_id
        try:
            acquired = await self.store.try_acquire_lease(
                lease_name(name), self.owner, self.lease_ttl
            )
        except BaseException:
            del self.running[name]
            raise
        if not acquired:
            del self.running[name]
            raise DrillBusy(name)
        try:
            # Recorded before answering, so the history shows the run as soon as it is accepted.
            await self.store.start_drill_run(run_id, name, datetime.now(UTC), self.owner)
        except BaseException:
            del self.running[name]
            with contextlib.suppress(Exception):
                await self.store.release_lease(lease_name(name), self.owner)
            raise
        task = asyncio.ensure_future(self._run(spec, run_id, lease_held=True, run_recorded=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run_id

    async def run(
        self, name: str, *, progress: Callable[[str], None] | None = None
    ) -> DrillReport | None:
        """Run a drill in the foreground (cron job, ``drwatch drill run``).

        Returns None when it runs already elsewhere. Raises UnknownDrill.
        """
        spec = self.spec(name)
        if name in self.running:
            return None
        run_id = uuid.uuid4().hex
        self.running[name] = run_id
        return await self._run(spec, run_id, lease_held=False, progress=progress)

    async def _run(
        self,
        spec: DrillSpec,
        run_id: str,
        *,
        lease_held: bool,
        run_recorded: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> DrillReport | None:
        try:
            try:
                backup = self.backup_for(spec)
            except ValueError as exc:
                report = await self._no_backup(
                    spec, run_id, str(exc), lease_held=lease_held, run_recorded=run_recorded
                )
            else:
                report = await run_drill_with_lease(
                    self.store,
                    spec,
                    backup,
                    self.owner,
                    progress=progress,
                    s3_client_factory=self.s3_client_factory,
                    run_id=run_id,
                    lease_held=lease_held,
                    run_recorded=run_recorded,
                    lease_ttl=self.lease_ttl,
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("restore drill crashed", extra={"drill": spec.name})
            return None
        finally:
            if self.running.get(spec.name) == run_id:
                del self.running[spec.name]
        if report is not None:
            self.last_reports[spec.name] = report
            key = (spec.name, report.status)
            self.runs_total[key] = self.runs_total.get(key, 0) + 1
        return report

    async def _no_backup(
        self,
        spec: DrillSpec,
        run_id: str,
        message: str,
        *,
        lease_held: bool,
        run_recorded: bool,
    ) -> DrillReport | None:
        name = lease_name(spec.name)
        if not lease_held and not await self.store.try_acquire_lease(
            name, self.owner, self.lease_ttl
        ):
            return None
        try:
            now = datetime.now(UTC)
            report = DrillReport(
                run_id=run_id,
                drill=spec.name,
                database="",
                started_at=now,
                finished_at=now,
                total_seconds=0.0,
                rto_seconds=spec.rto,
                message=redact.scrub(message),
            )
            if not run_recorded:
                await self.store.start_drill_run(run_id, spec.name, now, self.owner)
            await self.store.finish_drill_run(run_id, report.as_dict())
            return report
        finally:
            with contextlib.suppress(Exception):
                await self.store.release_lease(name, self.owner)

    async def stop(self) -> None:
        """Cancel running drills (each drops its database) and wait for them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # A run cancelled before it began never reached its own clean-up.
        for name, run_id in list(self.running.items()):
            spec = self.specs[name]
            report = _interrupted(
                run_id,
                spec,
                BackupRef("", datetime.now(UTC)),
                "The drill was cancelled before it started (drwatch stopped); it runs again "
                "at its next scheduled time.",
            )
            with contextlib.suppress(Exception):
                await self.store.finish_drill_run(run_id, report.as_dict())
            with contextlib.suppress(Exception):
                await self.store.release_lease(lease_name(name), self.owner)
            del self.running[name]
