"""``wal_archive``: a PostgreSQL primary archives its WAL, so point-in-time recovery can reach
close to the present.

Each run connects with ``dsn`` and reads ``archive_mode``, the archive command and
``pg_stat_archiver``:

* ``archive_mode`` off, or on with no ``archive_command``/``archive_library``, fails: nothing is
  archived and point-in-time recovery cannot go past the last base backup;
* a failure newer than the last success fails and names ``last_failed_wal``: the archiver retries
  that segment forever, and every later segment waits behind it;
* otherwise the age of ``last_archived_time`` is held against ``rpo`` (default 15 min).

An idle database writes no WAL, so it archives nothing and ``last_archived_time`` ages although
nothing is missing from the archive. When the server's current WAL position is exactly the end
of the last archived segment, nothing waits to be archived: the recovery point is now and the
age is 0. ``wal_archive_age_seconds`` in the details (the ``drwatch_wal_archive_age_seconds``
metric) is that age.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg
from pydantic import Field, SecretStr, field_validator

from app.checks import base
from app.checks._backup import BackupCheck, BackupFacts
from app.checks._net import is_postgres_url
from app.checks.base import CheckFailed, Result, Status
from app.redact import redact_url
from app.units import Duration, format_duration, format_size, rfc3339

_STATUS_SQL = """
SELECT current_setting('archive_mode') AS archive_mode,
       coalesce(current_setting('archive_command', true), '') <> ''
         OR coalesce(current_setting('archive_library', true), '') <> '' AS has_archiver,
       pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint END AS current_lsn,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')
         AS wal_segment_size,
       a.archived_count, a.last_archived_wal, a.last_archived_time,
       a.failed_count, a.last_failed_wal, a.last_failed_time,
       now() AS server_now
FROM pg_stat_archiver a
"""
# 00000001 0000000A 000000FF: timeline, high 32 bits of the LSN, segment within them.
_SEGMENT_NAME = re.compile(r"[0-9A-F]{8}([0-9A-F]{8})([0-9A-F]{8})")
_CLOSE_TIMEOUT = 1.0
# Share of the check's timeout spent before giving up itself, so a hung server is reported with
# its address before the runner's generic timeout.
_OWN_DEADLINE_SHARE = 0.9


class WalArchiveCheck(BackupCheck["WalArchiveCheck.Params"]):
    """Fails when WAL archiving is off, failing, or last succeeded longer than ``rpo`` ago."""

    class Params(base.Params):
        dsn: SecretStr = Field(description="postgresql://user:password@host:port/database")
        rpo: Duration = Field(
            900.0,
            description="Recovery point objective: fail when the last archived WAL is older.",
        )

        @field_validator("dsn")
        @classmethod
        def _postgres_url(cls, value: SecretStr) -> SecretStr:
            if not is_postgres_url(value.get_secret_value()):
                raise ValueError("must be a postgresql://user:password@host:port/database URL")
            return value

    default_interval: ClassVar[float] = 300.0
    default_timeout: ClassVar[float] = 15.0
    gauges: ClassVar[Mapping[str, str]] = {
        "wal_archive_age_seconds": "drwatch_wal_archive_age_seconds",
        "rpo_seconds": "drwatch_wal_archive_rpo_seconds",
    }

    @classmethod
    def production_dsn(cls, params: WalArchiveCheck.Params) -> str | None:
        # The primary whose WAL is archived: a drill's scratch databases have no place there.
        return params.dsn.get_secret_value()

    @property
    def where(self) -> str:
        return redact_url(self.params.dsn.get_secret_value())

    async def run(self) -> Result:
        facts = BackupFacts(rpo_seconds=self.params.rpo, location=self.where)
        facts.extra.update(bad_files=[], wal_archive_age_seconds=None)
        try:
            row = await self._read_status()
        except CheckFailed as failure:
            return self.unknown(facts, failure)
        return self._judge(dict(row), facts)

    async def _read_status(self) -> Any:
        deadline = self.timeout * _OWN_DEADLINE_SHARE
        try:
            async with asyncio.timeout(deadline):
                connection = await asyncpg.connect(
                    self.params.dsn.get_secret_value(),
                    timeout=deadline,
                    statement_cache_size=0,
                    server_settings={"application_name": "drwatch"},
                )
                try:
                    return await connection.fetchrow(_STATUS_SQL)
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), _CLOSE_TIMEOUT)
        except TimeoutError:
            raise CheckFailed(
                f"PostgreSQL at {self.where} did not answer within "
                f"{format_duration(deadline)}; the server is hung or unreachable, so its WAL "
                "archiving is unknown."
            ) from None
        except (
            asyncpg.InvalidPasswordError,
            asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InvalidCatalogNameError,
        ) as exc:
            raise CheckFailed(
                f"PostgreSQL at {self.where} refused the check's login ({type(exc).__name__}); "
                "fix the user, password or database in the DSN.",
                permanent=True,
            ) from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise CheckFailed(
                f"Cannot read WAL archiving status from PostgreSQL at {self.where} "
                f"({type(exc).__name__}: {exc}); the server is down or unreachable."
            ) from None

    def _judge(self, row: dict[str, Any], facts: BackupFacts) -> Result:
        where = self.where
        mode = str(row["archive_mode"])
        last_at: datetime | None = row["last_archived_time"]
        failed_at: datetime | None = row["last_failed_time"]
        facts.extra.update(
            archive_mode=mode,
            archived_count=row["archived_count"],
            last_archived_wal=row["last_archived_wal"],
            last_archived_time=rfc3339(last_at) if last_at else None,
            failed_count=row["failed_count"],
            last_failed_wal=row["last_failed_wal"],
            last_failed_time=rfc3339(failed_at) if failed_at else None,
        )
        facts.now = _aware(row["server_now"])
        if mode == "off":
            return self.report(
                facts,
                Status.FAIL,
                f"archive_mode is off on {where}; no WAL is archived, so point-in-time recovery "
                "cannot go past the last base backup. Set archive_mode=on (needs a restart).",
            )
        if not row["has_archiver"]:
            return self.report(
                facts,
                Status.FAIL,
                f"archive_mode is {mode} on {where} but neither archive_command nor "
                "archive_library is set; WAL piles up in pg_wal and nothing is archived.",
            )
        if row["in_recovery"] and mode != "always":
            return self.report(
                facts,
                Status.FAIL,
                f"{where} is a standby with archive_mode={mode}, which archives nothing there; "
                "point the check at the primary, or set archive_mode=always on the standby.",
            )

        pending = _pending_bytes(row)
        facts.extra["pending_wal_bytes"] = pending
        if last_at is not None:
            facts.last_backup_at = _aware(last_at)
            if pending == 0:
                # Everything written is in the archive: the recovery point is now.
                facts.last_backup_at = facts.now
        facts.extra["wal_archive_age_seconds"] = facts.age_seconds
        facts.location = f"{where} (archiver)"

        if failed_at is not None and (last_at is None or failed_at > last_at):
            since = f" since {rfc3339(last_at)}" if last_at else " ever"
            return self.report(
                facts,
                Status.FAIL,
                f"Archiving WAL segment {row['last_failed_wal']} failed at "
                f"{rfc3339(failed_at)} and nothing was archived{since}; archive_command is "
                "failing, so point-in-time recovery stops there and pg_wal keeps growing.",
            )
        if last_at is None:
            return self.report(
                facts,
                Status.FAIL,
                f"{where} has not archived any WAL segment yet (since its statistics were "
                "reset); if it writes, check that archive_command works.",
            )
        if not facts.within_rpo:
            waiting = f" while {format_size(pending)} of WAL waits" if pending else ""
            return self.report(
                facts,
                Status.FAIL,
                f"The last WAL segment was archived {facts.age_text} ago{waiting}, longer than "
                f"the {facts.rpo_text} RPO; archiving has stalled, or archive_timeout is unset "
                "on a quiet server.",
            )
        if pending == 0:
            return self.report(
                facts,
                Status.PASS,
                f"WAL archiving on {where} is current: nothing waits to be archived (last "
                f"segment {row['last_archived_wal']}).",
            )
        return self.report(
            facts,
            Status.PASS,
            f"WAL segment {row['last_archived_wal']} was archived {facts.age_text} ago "
            f"(RPO {facts.rpo_text}).",
        )


def _pending_bytes(row: dict[str, Any]) -> int | None:
    """WAL written after the end of the last archived segment, or None when unknown."""
    name = row["last_archived_wal"]
    current = row["current_lsn"]
    size = row["wal_segment_size"]
    if not name or current is None or not size:
        return None
    match = _SEGMENT_NAME.fullmatch(str(name))
    if not match:
        # A .history, .backup or .partial file: its end is not a segment boundary.
        return None
    high, segment = int(match.group(1), 16), int(match.group(2), 16)
    end = (high << 32) + (segment + 1) * int(size)
    return max(0, int(current) - end)


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
