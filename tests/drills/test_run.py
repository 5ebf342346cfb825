"""One drill run against real servers: every dump format restored, every kind of integrity
expectation, failures, timeouts, a killed run, and backups in S3."""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from app.drills.report import render_report
from app.drills.run import BackupRef, run_drill
from app.drills.target import cleanup_leftovers
from tests.credentials import fake_aws_credentials
from tests.drills.scratch import Dumps, drill, drill_databases, pg_dump, sleeping_dump
from tests.polling import eventually
from tests.servers import PostgresCluster, ThreadedServer

ROOT = Path(__file__).resolve().parents[2]


# --- passing drills -----------------------------------------------------------------------------


async def test_it_passes_a_drill_with_every_kind_of_expectation(
    source: PostgresCluster, target: PostgresCluster, dumps: Dumps
) -> None:
    """A good custom dump restores and every kind of integrity expectation is checked."""
    spec = drill(
        target,
        source_dsn=source.dsn_for("booking"),
        integrity=[
            {"name": "tenants", "sql": "SELECT count(*) FROM tenants", "expect": ">= 1"},
            {"name": "appointments", "sql": "SELECT count(*) FROM appointments", "expect": "== 42"},
            {"name": "leads", "sql": "SELECT count(*) FROM leads", "expect": "between 40 and 60"},
            {
                "name": "fresh",
                "sql": "SELECT max(created_at) FROM appointments",
                "within_rpo_of_backup": True,
            },
            {
                "name": "calls-match-live",
                "sql": "SELECT count(*) FROM calls",
                "compare_to_source": {"tolerance": 0.05},
            },
        ],
    )
    lines: list[str] = []
    report = await run_drill(
        spec, BackupRef(str(dumps.custom), dumps.taken_at), progress=lines.append
    )

    assert report.status == "pass", report.message
    assert [(r.name, r.passed) for r in report.integrity] == [
        ("tenants", True),
        ("appointments", True),
        ("leads", True),
        ("fresh", True),
        ("calls-match-live", True),
    ]
    observed = {r.name: r.observed for r in report.integrity}
    assert observed["tenants"] == 3
    assert observed["appointments"] == 42
    assert observed["leads"] == 50
    assert observed["calls-match-live"] == 30
    assert report.integrity[4].source_value == 30
    assert isinstance(observed["fresh"], datetime)
    assert report.data_loss_seconds is not None
    assert 0 <= report.data_loss_seconds < 3600
    assert report.backup_format == "custom"
    assert report.backup_size_bytes == dumps.custom.stat().st_size
    assert report.database.startswith("drwatch_drill_monthly_restore_")
    assert report.database_dropped
    assert report.within_rto is True
    assert report.restore_seconds is not None
    assert report.total_seconds is not None
    assert report.total_seconds >= report.restore_seconds
    assert "all 5 integrity checks passed" in report.message
    text = "\n".join(lines)
    for step in ("fetching", "creating", "restoring", "checking", "cleaning up"):
        assert step in text
    assert drill_databases(target) == []
    serialized = json.loads(json.dumps(report.as_dict()))
    assert serialized["status"] == "pass"
    assert serialized["integrity"][0]["observed"] == 3
    text = render_report(report)
    assert text.startswith("drill monthly-restore: PASS")
    assert "[+] appointments: 42 == 42" in text


@pytest.mark.parametrize(
    ("kind", "expected_format"),
    [
        ("plain", "plain"),
        ("plain_gz", "plain+gzip"),
        ("plain_zst", "plain+zstd"),
        ("directory", "directory"),
        ("tar", "tar"),
    ],
)
async def test_it_restores_every_dump_format(
    target: PostgresCluster, dumps: Dumps, kind: str, expected_format: str
) -> None:
    """Plain SQL (also gzip/zstd streams), directory and tar dumps restore like custom ones."""
    path = getattr(dumps, kind)
    spec = drill(
        target,
        integrity=[
            {"name": "appointments", "sql": "SELECT count(*) FROM appointments", "expect": "== 42"}
        ],
    )
    report = await run_drill(spec, BackupRef(str(path), dumps.taken_at))
    assert report.status == "pass", report.message
    assert report.backup_format == expected_format
    assert report.integrity[0].observed == 42
    assert drill_databases(target) == []


# --- failing drills ---------------------------------------------------------------------------


async def test_it_fails_when_a_table_has_too_few_rows(
    target: PostgresCluster, dumps: Dumps
) -> None:
    """A row count below the expectation fails the drill and names the check."""
    spec = drill(
        target,
        integrity=[
            {"name": "tenants", "sql": "SELECT count(*) FROM tenants", "expect": ">= 1"},
            {"name": "leads", "sql": "SELECT count(*) FROM leads", "expect": ">= 1000"},
        ],
    )
    report = await run_drill(spec, BackupRef(str(dumps.custom), dumps.taken_at))
    assert report.status == "fail"
    assert [(r.name, r.passed) for r in report.integrity] == [("tenants", True), ("leads", False)]
    assert report.integrity[1].observed == 50
    assert "'leads'" in report.message
    assert "expected >= 1000" in report.message
    assert drill_databases(target) == []


async def test_it_fails_when_the_newest_row_is_older_than_the_rpo(
    target: PostgresCluster, dumps: Dumps
) -> None:
    """A stale max(created_at) fails within_rpo_of_backup and sets the data-loss window."""
    spec = drill(
        target,
        integrity=[
            {
                "name": "calls-fresh",
                "sql": "SELECT max(created_at) FROM calls",
                "within_rpo_of_backup": True,
            }
        ],
    )
    report = await run_drill(spec, BackupRef(str(dumps.custom), dumps.taken_at))
    assert report.status == "fail"
    assert report.integrity[0].passed is False
    assert "(RPO 1d)" in report.message
    assert report.data_loss_seconds is not None
    assert report.data_loss_seconds > 3 * 86400


async def test_it_fails_when_the_live_database_differs_beyond_the_tolerance(
    source: PostgresCluster, target: PostgresCluster, dumps: Dumps
) -> None:
    """compare_to_source fails when the backup lost more than the tolerance allows."""
    spec = drill(
        target,
        source_dsn=source.dsn_for("booking"),
        integrity=[
            {
                "name": "leads-match-live",
                "sql": "SELECT count(*) FROM leads",
                "compare_to_source": {"tolerance": 0.1},
            }
        ],
    )
    # The live database gained as many leads again since the dump was taken.
    source.psql(
        "INSERT INTO leads SELECT g, 1, NULL, now() FROM generate_series(1001, 1050) g",
        database="booking",
    )
    try:
        report = await run_drill(spec, BackupRef(str(dumps.custom), dumps.taken_at))
    finally:
        source.psql("DELETE FROM leads WHERE id > 1000", database="booking")
    assert report.status == "fail"
    result = report.integrity[0]
    assert (result.observed, result.source_value) == (50, 100)
    assert "50.0% apart" in result.message


async def test_it_never_writes_to_the_source_database(
    source: PostgresCluster, target: PostgresCluster, dumps: Dumps
) -> None:
    """A compare_to_source query that tries to write is refused by the read-only transaction."""
    spec = drill(
        target,
        source_dsn=source.dsn_for("booking"),
        integrity=[
            {
                "name": "sneaky",
                "sql": "WITH d AS (DELETE FROM calls RETURNING 1) SELECT count(*) FROM d",
                "compare_to_source": {"tolerance": 0},
            }
        ],
    )
    report = await run_drill(spec, BackupRef(str(dumps.custom), dumps.taken_at))
    assert report.status == "fail"
    assert "read-only transaction" in report.integrity[0].message
    assert source.psql("SELECT count(*) FROM calls", database="booking") == "30"


async def test_it_fails_and_cleans_up_when_the_dump_is_corrupt(
    target: PostgresCluster, dumps: Dumps, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged dump fails the drill, leaves no database behind and never shows the password."""
    password = "drill-Secret-9137"
    target.psql("DROP ROLE IF EXISTS drill_admin")
    target.add_password_user("drill_admin", password)
    target.psql("ALTER ROLE drill_admin CREATEDB")
    corrupt = workdir / "corrupt.dump"
    data = bytearray(dumps.custom.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 400] = b"\xff" * 400
    corrupt.write_bytes(bytes(data))
    spec = drill(target, target_dsn=target.dsn_for("postgres", "drill_admin", password))

    lines: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="drwatch"):
        report = await run_drill(
            spec, BackupRef(str(corrupt), dumps.taken_at), progress=lines.append
        )

    assert report.status == "fail"
    assert "pg_restore failed" in report.message
    assert report.database_dropped
    assert drill_databases(target) == []
    everything = json.dumps(report.as_dict()) + "\n".join(lines) + caplog.text
    assert password not in everything


async def test_it_fails_when_the_backup_file_is_missing(
    target: PostgresCluster, workdir: Path
) -> None:
    """A backup path that does not exist is a failed drill with a plain reason."""
    report = await run_drill(
        drill(target), BackupRef(str(workdir / "gone.dump"), datetime.now(UTC))
    )
    assert report.status == "fail"
    assert "does not exist" in report.message
    assert drill_databases(target) == []


async def test_it_refuses_a_plain_dump_that_switches_databases(
    source: PostgresCluster, target: PostgresCluster, workdir: Path
) -> None:
    """A pg_dump --create script would \\connect elsewhere, so it is refused before restoring."""
    path = workdir / "create.sql"
    pg_dump(source.dsn_for("booking"), "-Fp", "--create", "-f", str(path))
    report = await run_drill(drill(target), BackupRef(str(path), datetime.now(UTC)))
    assert report.status == "fail"
    assert "creates or switches databases" in report.message
    assert "booking" not in target.psql("SELECT datname FROM pg_database").split()


# --- timeouts and crashes -----------------------------------------------------------------------


async def test_it_cancels_and_cleans_up_a_drill_that_exceeds_its_timeout(
    target: PostgresCluster, workdir: Path
) -> None:
    """Past its timeout the restore is killed, the database dropped and the step named."""
    spec = drill(target, timeout="1s")
    report = await run_drill(spec, BackupRef(str(sleeping_dump(workdir)), datetime.now(UTC)))
    assert report.status == "fail"
    assert "1s timeout" in report.message
    assert "restoring" in report.message
    assert report.database_dropped
    assert drill_databases(target) == []
    sleepers = target.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%'"
        " AND pid <> pg_backend_pid()"
    )
    assert sleepers == "0"


KILLED_DRILL = """
import asyncio, os, sys
from datetime import UTC, datetime
from app.drills.run import BackupRef, run_drill
from app.drills.spec import DrillSpec
spec = DrillSpec(name="killed", source="dumps", target_dsn=os.environ["DRILL_TARGET"])
backup = BackupRef(sys.argv[1], datetime.now(UTC))
asyncio.run(run_drill(spec, backup, progress=lambda line: print(line, flush=True)))
"""


async def test_the_next_run_removes_the_leftover_of_a_drill_killed_midway(
    target: PostgresCluster, workdir: Path
) -> None:
    """kill -9 during the restore leaves a marked database; cleanup_leftovers drops it."""
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_DRILL, str(sleeping_dump(workdir))],
        cwd=ROOT,
        env={**os.environ, "DRILL_TARGET": target.dsn},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("restoring"):
            break
    assert any(line.startswith("restoring") for line in seen), seen
    # Killed only once the restore is running on the server: psql sits in the dump's pg_sleep.
    await eventually(
        lambda: (
            target.psql(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname LIKE 'drwatch\\_drill\\_killed\\_%' AND query LIKE '%pg_sleep%'"
            )
            == "1"
        ),
        timeout=30,
    )
    process.send_signal(signal.SIGKILL)
    process.wait()

    leftovers = drill_databases(target)
    assert len(leftovers) == 1
    assert leftovers[0].startswith("drwatch_drill_killed_")

    # The killed restore's server process goes away once it notices its client is gone.
    dropped: list[str] = []

    async def cleaned_up() -> bool:
        dropped.extend(await cleanup_leftovers(target.dsn))
        return bool(dropped)

    await eventually(cleaned_up, timeout=30)
    assert dropped == leftovers
    assert drill_databases(target) == []


# --- backups in S3 --------------------------------------------------------------------------------


class FakeS3(BaseHTTPRequestHandler):
    """S3 GetObject, path-style (GET /bucket/key), with the documented NoSuchKey error body."""

    objects: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.objects.get(self.path.split("?", 1)[0])
        if body is None:
            error = (
                b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
                b"<Message>The specified key does not exist.</Message></Error>"
            )
            self.send_response(404)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            self.wfile.write(error)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
        self.send_header("Last-Modified", "Sun, 22 Nov 2026 03:00:00 GMT")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def s3(dumps: Dumps) -> Iterator[Callable[[], Any]]:
    import boto3
    from botocore.config import Config

    FakeS3.objects = {"/backups/nightly/booking.dump.gz": gzip.compress(dumps.custom.read_bytes())}
    server = ThreadedServer(ThreadingHTTPServer(("127.0.0.1", 0), FakeS3))
    port = server.server.server_address[1]  # type: ignore[attr-defined]

    credentials = fake_aws_credentials()

    def client() -> Any:
        return boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    yield client
    server.stop()


def drill_temp_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("drwatch-drill-*")}


async def test_it_downloads_a_backup_from_s3_and_removes_the_download(
    target: PostgresCluster, dumps: Dumps, s3: Callable[[], Any]
) -> None:
    """An s3:// backup (a gzip'd custom dump) is downloaded, restored, and its download removed."""
    before = drill_temp_dirs()
    spec = drill(
        target,
        integrity=[{"name": "leads", "sql": "SELECT count(*) FROM leads", "expect": "== 50"}],
    )
    report = await run_drill(
        spec,
        BackupRef("s3://backups/nightly/booking.dump.gz", dumps.taken_at),
        s3_client_factory=s3,
    )
    assert report.status == "pass", report.message
    assert report.backup_format == "custom+gzip"
    assert report.backup_size_bytes == len(FakeS3.objects["/backups/nightly/booking.dump.gz"])
    assert drill_temp_dirs() == before
    assert drill_databases(target) == []


async def test_it_fails_when_the_s3_object_is_missing(
    target: PostgresCluster, s3: Callable[[], Any]
) -> None:
    """A missing key is a failed drill that says the download failed; nothing is created."""
    report = await run_drill(
        drill(target),
        BackupRef("s3://backups/nightly/gone.dump", datetime.now(UTC)),
        s3_client_factory=s3,
    )
    assert report.status == "fail"
    assert "Could not download s3://backups/nightly/gone.dump" in report.message
    assert "NoSuchKey" in report.message
    assert not report.database_dropped
    assert drill_databases(target) == []


def test_a_backup_ref_comes_from_a_backup_checks_details() -> None:
    """The details a backup check reports are enough to name the backup to restore."""
    backup = BackupRef.from_details(
        {
            "location": "s3://dumps/nightly/2026-11-21.dump",
            "last_backup_at": "2026-11-21T03:00:00Z",
            "size_bytes": 1234,
            "rpo_seconds": 86400,
        }
    )
    assert backup.backup_time == datetime(2026, 11, 21, 3, tzinfo=UTC)
    assert (backup.size_bytes, backup.rpo_seconds) == (1234, 86400.0)
    with pytest.raises(ValueError, match="has not reported"):
        BackupRef.from_details({"location": None})


# --- the work directory --------------------------------------------------------------------------


@pytest.fixture
def small_work_dir(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs, so a drill runs out of room in it (needs root to mount)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


async def test_it_refuses_to_decompress_a_dump_its_work_directory_cannot_hold(
    target: PostgresCluster, tmp_path: Path, small_work_dir: Path
) -> None:
    """A 3 MB gzipped dump and 1 MB free: the drill fails before writing, saying how much."""
    dump = tmp_path / "big.dump.gz"
    dump.write_bytes(gzip.compress(b"PGDMP" + os.urandom(3_000_000), compresslevel=1))
    report = await run_drill(
        drill(target),
        BackupRef(str(dump), datetime.now(UTC)),
        work_dir=small_work_dir / "drills",
    )
    assert report.status == "fail"
    assert "needs 3.0 MB" in report.message
    assert "free" in report.message
    assert "DRWATCH_DRILL_WORK_DIR" in report.message
    assert list((small_work_dir / "drills").iterdir()) == []
