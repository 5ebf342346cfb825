"""Safety around the scratch server a drill restores into.

* A drill database is named ``drwatch_drill_<name>_<YYYYmmddHHMMSS>`` (:func:`database_name`)
  and marked with the comment ``drwatch restore drill <run id>``. Only databases with both the
  prefix and the marker are ever dropped by drwatch (:func:`cleanup_leftovers`).
* A drill whose target is a production database (a monitored postgres check's, or its own
  source) is a configuration error (:func:`check_targets`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import SecretStr

from app.checks._net import PostgresDsn
from app.drills.report import say
from app.drills.spec import DrillSpec

log = logging.getLogger("drwatch.drills")

DATABASE_PREFIX = "drwatch_drill_"
MARKER_PREFIX = "drwatch restore drill "
# PostgreSQL truncates identifiers at 63 bytes; prefix (14) + "_" + timestamp (14) leaves 34.
_MAX_NAME_PART = 63 - len(DATABASE_PREFIX) - 1 - 14


async def connect(dsn: str, *, database: str | None = None, **kwargs: Any) -> Any:
    return await asyncpg.connect(dsn=dsn, database=database, timeout=15, **kwargs)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def database_name(drill: str, when: datetime) -> str:
    """``drwatch_drill_<sanitized drill name>_<YYYYmmddHHMMSS>``: always a plain identifier."""
    part = re.sub(r"[^a-z0-9_]+", "_", drill.lower()).strip("_")[:_MAX_NAME_PART] or "drill"
    return f"{DATABASE_PREFIX}{part}_{when.astimezone(UTC):%Y%m%d%H%M%S}"


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
    conn = await connect(dsn)
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
                await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")
            except asyncpg.PostgresError as exc:
                log.info("leftover drill database in use, kept", extra={"database": name})
                say(progress, f"kept leftover database {name}: {exc}")
                continue
            dropped.append(name)
            say(progress, f"removed leftover database {name}")
    finally:
        await conn.close()
    return dropped


def check_targets(
    drills: Iterable[tuple[str, DrillSpec]], postgres_dsns: Iterable[str | SecretStr]
) -> list[tuple[str, str]]:
    """Config errors (field path, message) for drills whose target is a production database:
    the same host, port and database as a monitored ``postgres`` check, or as the drill's own
    ``source_dsn``. ``localhost``, ``127.0.0.1`` and ``::1`` count as the same host. Each drill
    comes with its field path (``drills.1``), so an error names the entry it is about.
    """
    production: list[tuple[str, int, str]] = []
    for dsn in postgres_dsns:
        text = dsn.get_secret_value() if isinstance(dsn, SecretStr) else dsn
        with contextlib.suppress(ValueError):
            production.append(PostgresDsn.parse(text).identity)
    errors: list[tuple[str, str]] = []
    for base, drill in drills:
        target_dsn = getattr(drill, "target_dsn", None)
        if target_dsn is None:
            continue  # it restores into a temporary instance of its own
        try:
            target = PostgresDsn.parse(target_dsn.get_secret_value()).identity
        except ValueError:
            continue
        where = f"{target[0]}:{target[1]}/{target[2]}"
        if target in production:
            errors.append(
                (
                    f"{base}.target_dsn",
                    f"points at {where}, the database of a monitored postgres check; a drill "
                    "creates and drops databases, so give it a scratch server",
                )
            )
        elif (source_dsn := getattr(drill, "source_dsn", None)) is not None:
            with contextlib.suppress(ValueError):
                if PostgresDsn.parse(source_dsn.get_secret_value()).identity == target:
                    errors.append(
                        (
                            f"{base}.target_dsn",
                            f"points at {where}, the drill's own source database; give it a "
                            "scratch server",
                        )
                    )
    return errors
