"""One restore drill run: restore the newest backup into a scratch server, check it, time it.

:func:`run_drill` goes through these steps, and always ends with the scratch database dropped and
the temporary directory removed, whether it passed, failed, timed out or was cancelled:

1. remove leftover drill databases from earlier runs that crashed (:func:`cleanup_leftovers`);
2. fetch the backup: a local file or directory is used in place, an ``s3://`` object is downloaded
   into a temporary directory; compressed custom/tar dumps are decompressed there too;
3. create ``drwatch_drill_<name>_<YYYYmmddHHMMSS>`` on the target server and mark it with the
   comment ``drwatch restore drill <run id>`` (see :mod:`app.drills.target`);
4. restore it: ``pg_restore --jobs N`` (custom, directory), ``pg_restore`` (tar, which cannot run in
   parallel), or ``psql -v ON_ERROR_STOP=1`` for plain SQL, gzip/zstd streams decompressed on
   their way in (:func:`app.dumps.restore`);
5. run the integrity queries (:mod:`app.drills.integrity`);
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
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from app import dumps, redact
from app.checks._net import PostgresDsn
from app.drills.backup import BackupRef as BackupRef  # where callers have always found it
from app.drills.integrity import Integrity
from app.drills.report import DrillReport, conclude, say
from app.drills.spec import DrillSpec
from app.drills.target import (
    MARKER_PREFIX,
    cleanup_leftovers,
    connect,
    database_name,
    quote_ident,
    quote_literal,
)
from app.dumps import Compression, Layout
from app.errors import CorruptDump, DrillFailed
from app.units import format_duration, format_size

log = logging.getLogger("drwatch.drills")

# How long dropping the drill database may take after a timeout or cancellation.
_CLEANUP_TIMEOUT = 120.0

S3ClientFactory = Callable[[], Any]
"""Returns a boto3-compatible S3 client (``get_object``) for ``s3://`` backups."""


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


class _Run:
    """State of one drill run, so cleanup knows what exists."""

    def __init__(
        self,
        spec: DrillSpec,
        backup: BackupRef,
        report: DrillReport,
        progress: Callable[[str], None] | None,
        s3_client_factory: S3ClientFactory | None,
        pg_bin: Path | None,
    ) -> None:
        self.spec = spec
        self.backup = backup
        self.report = report
        self.progress = progress
        self.s3_client_factory = s3_client_factory
        self.pg_bin = pg_bin
        self.target = PostgresDsn.parse(spec.scratch_dsn.get_secret_value())
        self.created = False
        self.guard: Any = None
        self.step = "starting"

    def say(self, line: str) -> None:
        say(self.progress, line)

    async def execute(self, workdir: Path) -> None:
        spec, report = self.spec, self.report
        self.step = "removing leftovers"
        try:
            await cleanup_leftovers(spec.scratch_dsn, progress=self.progress)
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
        integrity = Integrity(
            spec, report, self.guard, self.backup.backup_time, self.backup.rpo_seconds
        )
        await integrity.run()

    async def fetch(self, workdir: Path) -> tuple[Path, Compression | None, Layout]:
        location = self.backup.location
        if location.startswith("s3://"):
            if self.backup.size_bytes is not None:
                _ensure_room(workdir, self.backup.size_bytes, f"download {location}")
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
            dump_format: Layout = self.backup.format
            compression = self.backup.compression
        else:
            try:
                dump_format, compression = await asyncio.to_thread(dumps.detect_format, path)
            except (OSError, ValueError) as exc:
                raise DrillFailed(f"Cannot read the backup {location}: {exc}.") from None
        self.report.backup_format = dump_format + (f"+{compression}" if compression else "")
        if compression is not None and dump_format != "plain":
            # pg_restore reads neither gzip nor zstd streams, and --jobs needs a seekable file.
            plain_name = workdir / f"decompressed.{dump_format}"
            # At least the compressed size: custom and tar dumps compress their data themselves,
            # so the outer stream seldom shrinks them much.
            _ensure_room(workdir, path.stat().st_size, f"decompress {location}")
            self.say(f"decompressing {compression} into a temporary file")
            try:
                await dumps.decompress_to(path, compression, plain_name)
            except CorruptDump as exc:
                raise DrillFailed(
                    f"The {compression} backup does not decompress ({exc}); the file is corrupt "
                    "or truncated."
                ) from None
            path, compression = plain_name, None
        if dump_format == "plain" and await asyncio.to_thread(
            dumps.switches_database, path, compression
        ):
            raise DrillFailed(
                f"The plain SQL backup {location} creates or switches databases (made with "
                "pg_dump --create or pg_dumpall); drwatch restores only single-database dumps "
                "so that nothing is written outside its drill database."
            )
        return path, compression, dump_format

    async def create_database(self) -> None:
        name = self.report.database
        conn = await connect(self.spec.scratch_dsn.get_secret_value())
        try:
            await conn.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE template0")
            self.created = True
            # Connect before marking it: once marked, someone is always connected until the end,
            # so a concurrent cleanup_leftovers elsewhere never takes it for a leftover.
            self.guard = await connect(self.spec.scratch_dsn.get_secret_value(), database=name)
            marker = f"{MARKER_PREFIX}{self.report.run_id}"
            await conn.execute(
                f"COMMENT ON DATABASE {quote_ident(name)} IS {quote_literal(marker)}"
            )
        except asyncpg.PostgresError as exc:
            raise DrillFailed(
                f"Cannot create the drill database on {self.target.where}: {exc}; the target_dsn "
                "user needs CREATEDB."
            ) from None
        finally:
            await conn.close()

    async def restore(
        self, path: Path, dump_format: Layout, compression: Compression | None, jobs: int
    ) -> None:
        failed = await dumps.restore(
            path,
            dump_format,
            compression,
            database=self.report.database,
            env=self.target.libpq_environment(self.report.database, "drwatch-drill"),
            jobs=jobs,
            pg_bin=self.pg_bin,
        )
        if failed is not None:
            raise DrillFailed(
                f"{failed.program} failed ({failed.last_error}); the backup is corrupt or "
                "incomplete, or needs something the scratch server lacks (an extension, "
                "a role, a newer version)."
            )

    async def drop_database(self) -> None:
        if self.guard is not None:
            with contextlib.suppress(Exception):
                await self.guard.close(timeout=5)
            self.guard = None
        if not self.created:
            return
        name = self.report.database
        conn = await connect(self.spec.scratch_dsn.get_secret_value())
        try:
            force = " WITH (FORCE)" if conn.get_server_version().major >= 13 else ""
            # Our own database by name: FORCE ends restore backends that a kill left behind.
            await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}{force}")
        finally:
            await conn.close()
        self.created = False
        self.report.database_dropped = True


def _make_workdir(work_dir: Path | None) -> Path:
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="drwatch-drill-", dir=work_dir))


def _ensure_room(workdir: Path, needed: int, what: str) -> None:
    """DrillFailed unless the work directory's file system has ``needed`` bytes free."""
    free = shutil.disk_usage(workdir).free
    if needed > free:
        raise DrillFailed(
            f"The drill work directory {workdir.parent} has too little room to {what}: needs "
            f"{format_size(needed)}, {format_size(free)} free. Give DRWATCH_DRILL_WORK_DIR (the "
            "chart's drills.workDir volume) more space."
        )


async def run_drill(
    spec: DrillSpec,
    backup: BackupRef,
    *,
    progress: Callable[[str], None] | None = None,
    s3_client_factory: S3ClientFactory | None = None,
    run_id: str | None = None,
    pg_bin: Path | None = None,
    work_dir: Path | None = None,
) -> DrillReport:
    """Restore ``backup`` into a fresh database on ``spec.target_dsn``, check it, drop it.

    Returns the report; never raises for a failed drill. Cancelling the caller cancels the drill
    (subprocesses killed, database dropped) and re-raises CancelledError. ``s3_client_factory``
    returns a boto3-compatible S3 client (``get_object``) for ``s3://`` backups. ``pg_bin`` is
    the directory of the PostgreSQL client programs (else the newest installed version, or PATH).
    Downloads and decompressed dumps go under ``work_dir`` (default: the temporary directory).
    """
    if spec.rds is not None:
        from app.drills.rds import run_rds_drill

        return await run_rds_drill(spec, backup, progress=progress, run_id=run_id)
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
        skipped_backups=list(backup.skipped),
    )
    run = _Run(spec, backup, report, progress, s3_client_factory, pg_bin)
    failure: str | None = None
    workdir: Path | None = None
    try:
        workdir = await asyncio.to_thread(_make_workdir, work_dir)
    except OSError as exc:
        failure = (
            f"The drill work directory {work_dir} cannot be used ({exc.strerror}); check "
            "DRWATCH_DRILL_WORK_DIR and its volume."
        )
    try:
        deadline = asyncio.timeout(spec.timeout)
        try:
            if workdir is not None:
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
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    conclude(report, spec.rto, backup.backup_time, failure, cleanup_error, started)
    log.info(
        "restore drill finished",
        extra={"drill": spec.name, "status": report.status, "run_id": report.run_id},
    )
    return report
