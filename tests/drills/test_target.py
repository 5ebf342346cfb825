"""Safety on the scratch server: only marked, idle drill databases are removed, and a drill
never targets a production database."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

from app.drills.spec import DrillSpec
from app.drills.target import check_targets, cleanup_leftovers, database_name
from tests.drills.scratch import drill_databases
from tests.polling import eventually
from tests.servers import PG_BIN, PostgresCluster


async def test_cleanup_never_drops_a_database_drwatch_did_not_mark(
    target: PostgresCluster,
) -> None:
    """Only prefixed databases with drwatch's marker and no connections are dropped."""
    unmarked = "drwatch_drill_someone_else"
    other_comment = "drwatch_drill_commented"
    marked = "drwatch_drill_old_20200101000000"
    busy = "drwatch_drill_busy_20200101000000"
    for name in (unmarked, other_comment, marked, busy):
        target.psql(f"CREATE DATABASE {name}")
    target.psql(f"COMMENT ON DATABASE {other_comment} IS 'owned by the reporting team'")
    target.psql(f"COMMENT ON DATABASE {marked} IS 'drwatch restore drill 1234'")
    target.psql(f"COMMENT ON DATABASE {busy} IS 'drwatch restore drill 5678'")
    holder = subprocess.Popen(
        [
            str(PG_BIN / "psql"),
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            str(target.port),
            "-U",
            "postgres",
            "-d",
            busy,
            "-c",
            "SELECT pg_sleep(30)",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        await eventually(
            lambda: (
                target.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{busy}'")
                != "0"
            ),
            timeout=10,
        )
        dropped = await cleanup_leftovers(target.dsn)
    finally:
        holder.kill()
        holder.wait()
    try:
        assert dropped == [marked]
        assert sorted(drill_databases(target)) == sorted([unmarked, other_comment, busy])
    finally:
        for name in (unmarked, other_comment, busy):
            target.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_it_refuses_a_target_that_is_a_monitored_production_database() -> None:
    """A drill target on the same host, port and database as a postgres check is a config error."""
    drills = [
        DrillSpec(
            name="scratch",
            source="dumps",
            target_dsn="postgresql://admin:hunter2secret@scratch.internal:5432/postgres",
        ),
        DrillSpec(
            name="oops",
            source="dumps",
            target_dsn="postgresql://admin:hunter2secret@localhost/app",
        ),
        DrillSpec(
            name="same-server-other-database",
            source="dumps",
            target_dsn="postgresql://admin:hunter2secret@127.0.0.1:5432/postgres",
        ),
    ]
    errors = check_targets(
        [(f"drills.{i}", d) for i, d in enumerate(drills)],
        ["postgresql://app:prodpass-77@127.0.0.1:5432/app?sslmode=disable"],
    )
    assert [path for path, _ in errors] == ["drills.1.target_dsn"]
    assert "monitored postgres check" in errors[0][1]
    assert "hunter2secret" not in str(errors)
    assert "prodpass-77" not in str(errors)


def test_it_refuses_a_target_that_is_the_drills_own_source() -> None:
    """target_dsn equal to source_dsn (default port and database spelled out or not) is refused."""
    spec = DrillSpec(
        name="self",
        source="dumps",
        target_dsn="postgresql://admin@db.internal/booking",
        source_dsn="postgresql://reader:pw@DB.internal:5432/booking",
    )
    assert [path for path, _ in check_targets([("drills.0", spec)], [])] == ["drills.0.target_dsn"]


def test_a_drill_database_name_is_a_plain_identifier_within_postgres_limits() -> None:
    """Any drill name gives a lower-case identifier of at most 63 bytes, with the prefix."""
    when = datetime(2026, 11, 21, 3, 0, 5, tzinfo=UTC)
    assert database_name("Monthly-Restore.v2", when) == (
        "drwatch_drill_monthly_restore_v2_20261121030005"
    )
    long = database_name("x" * 200, when)
    assert len(long.encode()) <= 63
    assert long.startswith("drwatch_drill_xxx") and long.endswith("_20261121030005")
