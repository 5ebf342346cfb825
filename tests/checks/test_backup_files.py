"""The backup_files check against real pg_dump output in all four formats, and broken copies."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zstandard
from pydantic import ValidationError

from app.checks.backup_files import BackupFilesCheck
from app.checks.base import Result, Status
from tests.checks.backup_contract import BACKUP_KEYS
from tests.fakes.runs import assert_failed, run_once
from tests.polling import eventually
from tests.servers import PG_BIN, PostgresCluster

DATABASE = "drwatch_backup_files"


@pytest.fixture(scope="module")
def dumps(pg: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real pg_dump of a small database in every format drwatch reads."""
    pg.psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    pg.psql(f"CREATE DATABASE {DATABASE}")
    pg.psql(
        "CREATE TABLE tenants (id int PRIMARY KEY, name text NOT NULL);"
        "CREATE TABLE appointments (id int PRIMARY KEY, tenant_id int REFERENCES tenants,"
        " created_at timestamptz NOT NULL DEFAULT now(), note text);"
        "INSERT INTO tenants SELECT g, 'tenant ' || g FROM generate_series(1, 50) g;"
        "INSERT INTO appointments (id, tenant_id, note)"
        " SELECT g, 1 + g % 50, md5(g::text) || ' café' FROM generate_series(1, 8000) g;",
        DATABASE,
    )
    root = tmp_path_factory.mktemp("dumps")

    def pg_dump(*args: str) -> None:
        subprocess.run(
            [
                str(PG_BIN / "pg_dump"),
                "-h",
                "127.0.0.1",
                "-p",
                str(pg.port),
                "-U",
                "postgres",
                *args,
                DATABASE,
            ],
            check=True,
            capture_output=True,
        )

    made = {
        "plain": root / "dump.sql",
        "custom": root / "dump.dump",
        "tar": root / "dump.tar",
        "directory": root / "dump.dir",
        "schema": root / "schema.sql",
    }
    pg_dump("-Fp", "-f", str(made["plain"]))
    pg_dump("-Fc", "-f", str(made["custom"]))
    pg_dump("-Ft", "-f", str(made["tar"]))
    pg_dump("-Fd", "-f", str(made["directory"]))
    pg_dump("-Fp", "--schema-only", "-f", str(made["schema"]))
    plain = made["plain"].read_bytes()
    made["plain.gz"] = root / "dump.sql.gz"
    made["plain.gz"].write_bytes(gzip.compress(plain))
    made["plain.zst"] = root / "dump.sql.zst"
    made["plain.zst"].write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(plain))
    return made


def stamp(hours_ago: float) -> datetime:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).replace(microsecond=0)


def place(source: Path, directory: Path, taken_at: datetime, suffix: str) -> Path:
    """A copy of ``source`` named backup_YYYYmmdd_HHMMSS<suffix>, modified at ``taken_at``."""
    target = directory / f"backup_{taken_at:%Y%m%d_%H%M%S}{suffix}"
    if source.is_dir():
        shutil.copytree(source, target)
        for inner in target.iterdir():
            set_mtime(inner, taken_at)
    else:
        shutil.copyfile(source, target)
    set_mtime(target, taken_at)
    return target


def set_mtime(path: Path, at: datetime) -> None:
    os.utime(path, (at.timestamp(), at.timestamp()))


def damage(path: Path, *, truncate: bool = False, flip_middle: bool = False) -> None:
    mtime = path.stat().st_mtime
    data = bytearray(path.read_bytes())
    if truncate:
        data = data[: len(data) // 2]
    if flip_middle:
        middle = len(data) // 2
        for i in range(middle, middle + 64):
            data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, (mtime, mtime))


def check(directory: Path, **params: Any) -> BackupFilesCheck:
    params.setdefault("recheck_delay", 0)
    return BackupFilesCheck("dumps", BackupFilesCheck.Params(path=directory, **params), timeout=60)


async def run(directory: Path, **params: Any) -> Result:
    result = await run_once(check(directory, **params))
    assert set(result.details) >= BACKUP_KEYS, result.details
    return result


SUFFIX = {
    "plain": ".sql",
    "plain.gz": ".sql.gz",
    "plain.zst": ".sql.zst",
    "custom": ".dump",
    "tar": ".tar",
    "directory": ".dir",
}


@pytest.mark.parametrize("fmt", list(SUFFIX))
async def test_it_passes_for_a_fresh_verified_dump_in_each_format(
    dumps: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    """A real dump an hour old, in each format, is read in full and passes."""
    taken_at = stamp(1)
    path = place(dumps[fmt], tmp_path, taken_at, SUFFIX[fmt])
    result = await run(tmp_path, pattern="backup_*")
    assert result.status is Status.PASS, result.output
    details = result.details
    assert details["last_backup_at"] == taken_at.isoformat().replace("+00:00", "Z")
    assert 3590 < details["age_seconds"] < 3700
    assert details["rpo_seconds"] == 86400
    assert details["within_rpo"] is True
    assert details["verified"] is True
    assert details["location"] == str(path)
    assert details["format"] == fmt
    assert details["bad_files"] == []
    assert details["size_bytes"] > 10_000
    if fmt in ("custom", "tar", "directory"):
        assert "TOC entries" in details["verified_by"]
        entries = int(details["verified_by"].split("(")[1].split()[0])
        assert entries >= 4  # two tables, their data, constraints
    else:
        assert "dump complete marker" in details["verified_by"]


async def test_it_fails_when_the_newest_dump_is_older_than_the_rpo(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    """A good dump 30 hours old is outside a 24 h RPO."""
    place(dumps["custom"], tmp_path, stamp(30), ".dump")
    result = await run(tmp_path, rpo="24h")
    assert_failed(result, "older than the 1d RPO")
    assert result.details["within_rpo"] is False
    assert result.details["verified"] is True
    assert result.details["age_seconds"] > 24 * 3600


@pytest.mark.parametrize("fmt", ["plain", "plain.gz", "custom", "tar", "directory"])
async def test_it_falls_back_to_the_previous_dump_when_the_newest_is_truncated(
    dumps: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    """A dump cut off half-way is named as bad and the age comes from the one before."""
    good_at = stamp(5)
    good = place(dumps[fmt], tmp_path, good_at, SUFFIX[fmt])
    bad = place(dumps[fmt], tmp_path, stamp(1), SUFFIX[fmt])
    if fmt == "directory":
        damage(max(bad.glob("*.dat.gz"), key=lambda p: p.stat().st_size), truncate=True)
    else:
        damage(bad, truncate=True)
    result = await run(tmp_path)
    assert_failed(result, bad.name, good.name)
    assert result.details["bad_files"][0]["path"] == str(bad)
    assert result.details["location"] == str(good)
    assert result.details["verified"] is False
    assert result.details["within_rpo"] is True
    assert 5 * 3600 - 10 < result.details["age_seconds"] < 5 * 3600 + 120


async def test_it_never_takes_a_zero_byte_file_as_the_newest_backup(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    """An empty file is bad, even with verification off."""
    good = place(dumps["plain"], tmp_path, stamp(3), ".sql")
    empty = tmp_path / f"backup_{stamp(1):%Y%m%d_%H%M%S}.sql"
    empty.touch()
    set_mtime(empty, stamp(1))
    result = await run(tmp_path, verify=False)
    assert_failed(result, empty.name, "empty")
    assert result.details["location"] == str(good)
    assert result.details["bad_files"] == [{"path": str(empty), "problem": "empty (0 bytes)"}]


async def test_it_fails_when_every_dump_is_bad(dumps: dict[str, Path], tmp_path: Path) -> None:
    """With nothing restorable, the age is unknown and the output lists the bad files."""
    bad = place(dumps["custom"], tmp_path, stamp(1), ".dump")
    damage(bad, truncate=True)
    result = await run(tmp_path)
    assert_failed(result, "No good backup", bad.name)
    assert result.details["last_backup_at"] is None
    assert result.details["age_seconds"] is None
    assert result.details["within_rpo"] is False
    assert result.details["verified"] is False


@pytest.mark.parametrize("fmt", ["custom", "plain.gz", "plain.zst", "plain"])
async def test_it_fails_when_the_newest_dump_is_corrupted_in_the_middle(
    dumps: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    """Flipped bytes inside compressed data or UTF-8 text are caught by the full read."""
    good = place(dumps[fmt], tmp_path, stamp(4), SUFFIX[fmt])
    bad = place(dumps[fmt], tmp_path, stamp(1), SUFFIX[fmt])
    damage(bad, flip_middle=True)
    result = await run(tmp_path)
    assert_failed(result, bad.name)
    assert result.details["bad_files"][0]["path"] == str(bad)
    assert result.details["location"] == str(good)


async def test_it_fails_when_the_sha256_sidecar_does_not_match(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    """A tar dump (no checksum of its own) with a flipped byte is caught by its sidecar."""
    good = place(dumps["tar"], tmp_path, stamp(4), ".tar")
    write_sidecar(good)
    bad = place(dumps["tar"], tmp_path, stamp(1), ".tar")
    write_sidecar(bad)
    damage(bad, flip_middle=True)
    result = await run(tmp_path)
    assert_failed(result, bad.name, "SHA-256 mismatch")
    assert result.details["location"] == str(good)
    assert "sha256 sidecar" in result.details["verified_by"]


async def test_it_reports_the_sidecar_when_it_matches(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    """A matching sidecar is named in verified_by and the sidecar is not taken for a dump."""
    path = place(dumps["plain"], tmp_path, stamp(2), ".sql")
    write_sidecar(path)
    result = await run(tmp_path, pattern="backup_*")
    assert result.status is Status.PASS, result.output
    assert result.details["verified_by"].startswith("sha256 sidecar")
    assert result.details["location"] == str(path)


def write_sidecar(path: Path) -> None:
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.write_text(f"{digest}  {path.name}\n")


async def test_it_skips_a_dump_modified_within_the_settle_time(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    """A half-written dump (mtime just now) is neither bad nor the newest good backup."""
    good = place(dumps["custom"], tmp_path, stamp(6), ".dump")
    partial = tmp_path / f"backup_{stamp(0):%Y%m%d_%H%M%S}.dump"
    partial.write_bytes(dumps["custom"].read_bytes()[:1000])
    result = await run(tmp_path, settle="10m")
    assert result.status is Status.PASS, result.output
    assert "still being written" in result.output
    assert result.details["in_progress"] == [str(partial)]
    assert result.details["bad_files"] == []
    assert result.details["location"] == str(good)


async def test_it_skips_a_dump_that_grows_between_two_looks(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    """A file another process keeps appending to is seen growing and is skipped."""
    good = place(dumps["plain"], tmp_path, stamp(6), ".sql")
    growing = tmp_path / f"backup_{stamp(0.5):%Y%m%d_%H%M%S}.sql"
    growing.write_bytes(dumps["plain"].read_bytes()[:5000])
    stop = threading.Event()

    def writer() -> None:
        # Keep the mtime old so only the second look can tell it is growing.
        with growing.open("ab") as f:
            while not stop.is_set():
                f.write(b"INSERT INTO t VALUES (1);\n")
                f.flush()
                set_mtime(growing, stamp(0.5))
                time.sleep(0.01)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        result = await run(tmp_path, settle=0, recheck_delay="300ms")
    finally:
        stop.set()
        thread.join()
    assert result.status is Status.PASS, result.output
    assert result.details["in_progress"] == [str(growing)]
    assert result.details["location"] == str(good)


async def test_it_warns_when_the_newest_dump_shrank_by_more_than_max_shrink(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    """A complete but much smaller dump than the earlier ones is suspicious."""
    for hours in (72, 48, 24):
        place(dumps["plain"], tmp_path, stamp(hours), ".sql")
    small = place(dumps["schema"], tmp_path, stamp(1), ".sql")
    result = await run(tmp_path)
    assert result.status is Status.WARN, result.output
    assert small.name in result.output
    assert "smaller than the earlier ones" in result.output
    assert result.details["typical_size_bytes"] == dumps["plain"].stat().st_size


async def test_it_passes_when_the_dump_shrank_less_than_max_shrink(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    """With max_shrink 1.0 nothing is considered too small."""
    place(dumps["plain"], tmp_path, stamp(24), ".sql")
    place(dumps["schema"], tmp_path, stamp(1), ".sql")
    result = await run(tmp_path, max_shrink=1.0)
    assert result.status is Status.PASS, result.output


async def test_it_treats_a_dump_below_min_size_as_bad(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    """min_size rejects a complete dump that is too small to be the real database."""
    good = place(dumps["plain"], tmp_path, stamp(10), ".sql")
    small = place(dumps["schema"], tmp_path, stamp(1), ".sql")
    result = await run(tmp_path, min_size="50KB")
    assert_failed(result, small.name, "below min_size")
    assert result.details["location"] == str(good)


async def test_it_orders_by_the_timestamp_in_the_name_not_the_mtime(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    """A newer name wins even when an older dump was touched later (copied, restored)."""
    newer = place(dumps["plain"], tmp_path, stamp(2), ".sql")
    older = place(dumps["plain"], tmp_path, stamp(20), ".sql")
    set_mtime(older, stamp(1))
    result = await run(tmp_path)
    assert result.details["location"] == str(newer)
    assert result.details["timestamp_from"] == "name"
    by_mtime = await run(tmp_path, timestamp="mtime")
    assert by_mtime.details["location"] == str(older)
    assert by_mtime.details["timestamp_from"] == "mtime"


async def test_it_reads_iso_8601_and_configured_name_formats(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    """ISO-8601 names (with '-' for ':') and a strptime name_format give the backup time."""
    iso = tmp_path / "iso"
    iso.mkdir()
    taken_at = stamp(3)
    path = iso / f"shop-{taken_at:%Y-%m-%dT%H-%M-%S}Z.sql"
    shutil.copyfile(dumps["plain"], path)
    set_mtime(path, stamp(0.5))
    result = await run(iso, pattern="shop-*.sql")
    assert result.details["last_backup_at"] == taken_at.isoformat().replace("+00:00", "Z")

    custom = tmp_path / "custom"
    custom.mkdir()
    path = custom / f"nightly.{taken_at:%d.%m.%Y.%H%M}.sql"
    shutil.copyfile(dumps["plain"], path)
    set_mtime(path, stamp(0.5))
    result = await run(custom, pattern="nightly.*.sql", name_format="%d.%m.%Y.%H%M")
    assert result.details["last_backup_at"] == taken_at.replace(second=0).isoformat().replace(
        "+00:00", "Z"
    )


async def test_it_fails_when_the_directory_is_missing(tmp_path: Path) -> None:
    """An unmounted volume is reported as such, with the backup keys set to unknown."""
    result = await run(tmp_path / "not-mounted")
    assert_failed(result, "does not exist")
    assert result.details["last_backup_at"] is None
    assert result.details["within_rpo"] is False


async def test_it_fails_when_no_file_matches(tmp_path: Path) -> None:
    """An empty backup directory means the job never ran or writes elsewhere."""
    (tmp_path / "notes.txt").write_text("hello")
    result = await run(tmp_path, pattern="backup_*.sql*")
    assert_failed(result, "No backup matching")


async def test_it_verifies_a_given_file_only_once(dumps: dict[str, Path], tmp_path: Path) -> None:
    """A second run reuses the outcome; a changed file is verified again."""
    backups = tmp_path / "backups"
    backups.mkdir()
    path = place(dumps["custom"], backups, stamp(2), ".dump")
    calls = tmp_path / "calls.log"
    wrapper = tmp_path / "pg_restore"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {PG_BIN / "pg_restore"} "$@"\n')
    wrapper.chmod(0o755)
    probe = check(backups, pg_restore=str(wrapper))
    try:
        first = await probe.run()
        assert first.status is Status.PASS, first.output
        count = len(calls.read_text().splitlines())
        assert count == 2  # --list, then the full read
        second = await probe.run()
        assert second.status is Status.PASS, second.output
        assert second.details["verified_by"] == first.details["verified_by"]
        assert len(calls.read_text().splitlines()) == count
        set_mtime(path, stamp(1.5))
        await probe.run()
        assert len(calls.read_text().splitlines()) == count + 2
    finally:
        await probe.close()


async def test_it_kills_pg_restore_when_the_run_is_cancelled(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    """A hung pg_restore does not outlive the check's timeout."""
    backups = tmp_path / "backups"
    backups.mkdir()
    place(dumps["custom"], backups, stamp(2), ".dump")
    pid_file = tmp_path / "pid"
    wrapper = tmp_path / "pg_restore"
    wrapper.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 600\n")
    wrapper.chmod(0o755)
    result = await run_once(check(backups, pg_restore=str(wrapper)), timeout=1.0)
    assert_failed(result, "timeout")
    pid = int(pid_file.read_text())
    await eventually(lambda: not alive(pid), timeout=10)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child not yet reaped is a zombie: dead for our purposes.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"name_regex": "backup_(["}, "name_regex"),
        ({"name_timezone": "Mars/Olympus"}, "name_timezone"),
        ({"pattern": "/backups/*.sql"}, "pattern"),
        ({"max_shrink": 1.5}, "max_shrink"),
    ],
)
def test_it_rejects_bad_parameters_at_start_up(
    tmp_path: Path, params: dict[str, Any], field: str
) -> None:
    """Config mistakes are errors naming the field, not failures at the first run."""
    with pytest.raises(ValidationError) as caught:
        BackupFilesCheck.Params(path=tmp_path, **params)
    assert caught.value.errors()[0]["loc"] == (field,)
