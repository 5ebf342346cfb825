"""The wal_archive check against throwaway clusters that archive WAL with cp, or fail to."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.checks.base import Result, Status
from app.checks.wal_archive import WalArchiveCheck
from app.config import parse_config
from app.runner import run_check
from tests.checks.backup_contract import BACKUP_KEYS as BACKUP_CONTRACT
from tests.fakes.runs import assert_failed, assert_secret_absent, run_once
from tests.polling import eventually
from tests.servers import PostgresCluster

BACKUP_KEYS = BACKUP_CONTRACT | {"wal_archive_age_seconds"}


def archive_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="drwatch-wal-archive-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    return directory


@pytest.fixture(scope="module")
def archiving() -> Iterator[tuple[PostgresCluster, Path]]:
    """A cluster whose archive_command copies each finished WAL segment to a directory."""
    directory = archive_dir()
    cluster = PostgresCluster.create(
        {"archive_mode": "on", "archive_command": f"cp %p {directory}/%f", "archive_timeout": "0"},
        name="wal-archive",
    )
    cluster.psql("CREATE TABLE IF NOT EXISTS bookings (id serial PRIMARY KEY, note text)")
    yield cluster, directory
    cluster.destroy()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def failing() -> Iterator[PostgresCluster]:
    """A cluster whose archive_command always fails."""
    cluster = PostgresCluster.create(
        {"archive_mode": "on", "archive_command": "false"}, name="wal-failing"
    )
    cluster.psql("CREATE TABLE bookings (id serial PRIMARY KEY, note text)")
    yield cluster
    cluster.destroy()


def check(dsn: str, **params: object) -> WalArchiveCheck:
    return WalArchiveCheck("wal", WalArchiveCheck.Params(dsn=dsn, **params), timeout=10)


async def run(probe: WalArchiveCheck) -> Result:
    result = await run_once(probe)
    assert set(result.details) >= BACKUP_KEYS, result.details
    return result


async def switch_and_wait(cluster: PostgresCluster, column: str) -> str:
    """Write, force a WAL segment switch, and wait until the archiver counts it in ``column``."""
    before = int(cluster.psql(f"SELECT {column} FROM pg_stat_archiver"))
    cluster.psql("INSERT INTO bookings (note) VALUES ('drwatch')")
    segment = cluster.psql("SELECT pg_walfile_name(pg_switch_wal())")
    await eventually(
        lambda: int(cluster.psql(f"SELECT {column} FROM pg_stat_archiver")) > before, timeout=30
    )
    return segment


async def test_it_passes_when_the_last_segment_was_just_archived(
    archiving: tuple[PostgresCluster, Path],
) -> None:
    """A segment switched and copied moments ago is well within a 15 minute RPO."""
    cluster, directory = archiving
    segment = await switch_and_wait(cluster, "archived_count")
    assert (directory / segment).exists()
    result = await run(check(cluster.dsn))
    assert result.status is Status.PASS, result.output
    details = result.details
    assert details["archive_mode"] == "on"
    assert details["last_archived_wal"] >= segment
    assert details["within_rpo"] is True
    assert details["wal_archive_age_seconds"] < 60
    assert details["rpo_seconds"] == 900
    assert isinstance(details["pending_wal_bytes"], int)


async def test_it_fails_when_the_last_archive_is_older_than_the_rpo_with_wal_waiting(
    archiving: tuple[PostgresCluster, Path],
) -> None:
    """Writes after the last archived segment, with a tiny RPO, are past it."""
    cluster, _ = archiving
    await switch_and_wait(cluster, "archived_count")
    cluster.psql("INSERT INTO bookings (note) SELECT md5(g::text) FROM generate_series(1, 500) g")
    result = await run(check(cluster.dsn, rpo="1ms"))
    assert_failed(result, "longer than the", "RPO")
    assert result.details["pending_wal_bytes"] > 0
    assert result.details["within_rpo"] is False


async def test_it_fails_and_names_the_segment_when_archive_command_fails(
    failing: PostgresCluster,
) -> None:
    """A failing archive_command leaves a failure newer than any success."""
    segment = await switch_and_wait(failing, "failed_count")
    result = await run(check(failing.dsn))
    assert_failed(result, segment, "archive_command is failing")
    assert result.details["last_failed_wal"] == segment
    assert result.details["failed_count"] >= 1


async def test_it_fails_when_a_command_starts_failing_after_successes(
    archiving: tuple[PostgresCluster, Path],
) -> None:
    """Switching a working archive_command to `false` is caught on the next segment."""
    cluster, _ = archiving
    await switch_and_wait(cluster, "archived_count")
    cluster.psql("ALTER SYSTEM SET archive_command = 'false'")
    cluster.psql("SELECT pg_reload_conf()")
    try:
        segment = await switch_and_wait(cluster, "failed_count")
        result = await run(check(cluster.dsn))
        assert_failed(result, segment, "nothing was archived since")
        assert result.details["last_archived_time"] is not None
    finally:
        cluster.psql("ALTER SYSTEM RESET archive_command")
        cluster.psql("SELECT pg_reload_conf()")


async def test_it_fails_when_archive_mode_is_off(pg: PostgresCluster) -> None:
    """Without archive_mode there is no point-in-time recovery at all."""
    result = await run(check(pg.dsn))
    assert_failed(result, "archive_mode is off")
    assert result.details["last_backup_at"] is None
    assert result.details["within_rpo"] is False


async def test_a_configured_check_still_names_its_server_in_the_output(pg: PostgresCluster) -> None:
    """Scrubbing secrets keeps host, port and database: only passwords are secret."""
    config = parse_config(
        {"checks": [{"name": "pitr", "type": "wal_archive", "params": {"dsn": pg.dsn}}]}
    )
    result = await run_check(config.checks[0].build())
    assert_failed(result, "archive_mode is off")
    assert f"127.0.0.1:{pg.port}" in result.output
    assert "***" not in result.output


async def test_it_fails_permanently_on_a_wrong_password_without_showing_it(
    pg: PostgresCluster,
) -> None:
    """A rejected login is permanent and the DSN's password never appears."""
    user = f"wal_{uuid.uuid4().hex[:8]}"
    pg.add_password_user(user, "right-password-123")
    wrong = "wrong-password-456"
    result = await run(check(pg.dsn_for("postgres", user, wrong)))
    assert_failed(result, "refused the check's login", permanent=True)
    assert_secret_absent(result, wrong)
    assert result.details["location"].startswith(f"postgresql://{user}:***@")
