"""app.dumps against real pg_dump output: formats told from the contents, broken dumps found,
dumps piped into real pg_restore and psql, and the programs killed when the caller gives up."""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from app import dumps
from app.checks._net import PostgresDsn
from app.errors import CorruptDump
from tests.drills.scratch import SCHEMA, Dumps, make_dumps
from tests.polling import eventually
from tests.servers import PG_BIN, PostgresCluster

DATABASE = "drwatch_dumps"


@pytest.fixture(scope="module")
def made(pg: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Dumps:
    pg.psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    pg.psql(f"CREATE DATABASE {DATABASE}")
    pg.psql(SCHEMA, database=DATABASE)
    return make_dumps(pg.dsn_for(DATABASE), tmp_path_factory.mktemp("dumps"))


@pytest.fixture
def scratch_database(pg: PostgresCluster) -> Iterator[str]:
    """An empty database to restore into, dropped afterwards."""
    name = "drwatch_dumps_restored"
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg.psql(f"CREATE DATABASE {name}")
    yield name
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def compressed(source: Path, directory: Path, compression: str) -> Path:
    data = source.read_bytes()
    if compression == "gzip":
        path = directory / f"{source.name}.gz"
        path.write_bytes(gzip.compress(data))
    else:
        path = directory / f"{source.name}.zst"
        path.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(data))
    return path


def truncated(source: Path, directory: Path) -> Path:
    path = directory / f"truncated-{source.name}"
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def restore_env(pg: PostgresCluster, database: str) -> dict[str, str]:
    return PostgresDsn.parse(pg.dsn).libpq_environment(database, "drwatch-test")


# --- what a dump is -------------------------------------------------------------------------------


def test_it_detects_the_dump_format_from_the_contents(made: Dumps, tmp_path: Path) -> None:
    """The format comes from magic bytes, not from the file name."""
    renamed = tmp_path / "nightly.bin"
    shutil.copy(made.plain_gz, renamed)
    assert dumps.detect_format(made.custom) == ("custom", None)
    assert dumps.detect_format(made.directory) == ("directory", None)
    assert dumps.detect_format(made.tar) == ("tar", None)
    assert dumps.detect_format(made.plain) == ("plain", None)
    assert dumps.detect_format(renamed) == ("plain", "gzip")
    assert dumps.detect_format(made.plain_zst) == ("plain", "zstd")


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_it_looks_into_compressed_custom_and_tar_dumps(
    made: Dumps, tmp_path: Path, compression: str
) -> None:
    """A compressed custom or tar dump is recognised by what the stream holds."""
    assert dumps.detect_format(compressed(made.custom, tmp_path, compression)) == (
        "custom",
        compression,
    )
    assert dumps.detect_format(compressed(made.tar, tmp_path, compression)) == (
        "tar",
        compression,
    )


def test_it_names_formats_the_way_the_backup_check_reports_them(
    made: Dumps, tmp_path: Path
) -> None:
    """dump_format gives one word per file; a directory without toc.dat stays a directory."""
    assert dumps.dump_format(made.custom) == "custom"
    assert dumps.dump_format(made.directory) == "directory"
    assert dumps.dump_format(made.tar) == "tar"
    assert dumps.dump_format(made.plain) == "plain"
    assert dumps.dump_format(made.plain_gz) == "plain.gz"
    assert dumps.dump_format(made.plain_zst) == "plain.zst"
    not_a_dump = tmp_path / "photos"
    not_a_dump.mkdir()
    assert dumps.dump_format(not_a_dump) == "directory"
    with pytest.raises(ValueError, match=r"without toc\.dat"):
        dumps.detect_format(not_a_dump)


def test_a_broken_stream_gives_what_it_can_without_raising(made: Dumps, tmp_path: Path) -> None:
    """The start of a truncated gzip dump is readable; a zstd block cut short gives nothing."""
    broken_gz = truncated(made.plain_gz, tmp_path)
    assert dumps.detect_format(broken_gz) == ("plain", "gzip")
    assert dumps.read_head(broken_gz, "gzip", 64).startswith(b"--")
    # The whole small dump is one zstd block: cut, none of it decodes.
    broken_zst = truncated(made.plain_zst, tmp_path)
    assert dumps.read_head(broken_zst, "zstd", 64) == b""
    assert dumps.detect_format(broken_zst) == ("plain", "zstd")


def test_it_reads_every_frame_of_a_zstd_file(made: Dumps, tmp_path: Path) -> None:
    """Frames written one after another (pzstd, cat a.zst b.zst) all decompress, in order."""
    plain = made.plain.read_bytes()
    half = len(plain) // 2
    compressor = zstandard.ZstdCompressor(write_checksum=True)
    path = tmp_path / "frames.sql.zst"
    path.write_bytes(compressor.compress(plain[:half]) + compressor.compress(plain[half:]))
    with dumps.open_dump(path, "zstd") as stream:
        assert stream.read() == plain


def test_it_finds_a_plain_dump_that_switches_databases(made: Dumps, tmp_path: Path) -> None:
    """\\connect or CREATE DATABASE near the top of a script, also inside gzip, is found."""
    assert not dumps.switches_database(made.plain, None)
    script = tmp_path / "cluster.sql.gz"
    script.write_bytes(gzip.compress(b"-- PostgreSQL database cluster dump\n\\connect booking\n"))
    assert dumps.switches_database(script, "gzip")


# --- verification -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fmt", "method"),
    [
        ("custom", "custom", "full pg_restore read"),
        ("directory", "directory", "full pg_restore read"),
        ("tar", "tar", "full tar read"),
        ("plain", "plain", "full read and dump complete marker"),
        ("plain_gz", "plain.gz", "full gzip read and dump complete marker"),
        ("plain_zst", "plain.zst", "full zstd read and dump complete marker"),
    ],
)
async def test_it_verifies_a_good_dump_of_every_format(
    made: Dumps, kind: str, fmt: dumps.DumpFormat, method: str
) -> None:
    """Each format is read the way it allows and passes."""
    outcome = await dumps.verify(
        getattr(made, kind), fmt, sidecar=False, pg_restore=str(PG_BIN / "pg_restore")
    )
    assert outcome.ok, outcome.problem
    assert method in outcome.method


@pytest.mark.parametrize(
    ("kind", "fmt", "problem"),
    [
        # Cut in half, the TOC of a small custom dump is incomplete already.
        ("custom", "custom", "not a readable pg_dump archive"),
        ("tar", "tar", "a broken tar archive"),
        ("plain", "plain", "does not end with PostgreSQL's 'dump complete' marker"),
        ("plain_gz", "plain.gz", "a broken gzip stream"),
        ("plain_zst", "plain.zst", "a broken zstd stream (unexpected end of file"),
    ],
)
async def test_it_finds_a_truncated_dump_of_every_format(
    made: Dumps, tmp_path: Path, kind: str, fmt: dumps.DumpFormat, problem: str
) -> None:
    """Cut in half, every format fails verification and says how."""
    outcome = await dumps.verify(
        truncated(getattr(made, kind), tmp_path),
        fmt,
        sidecar=False,
        pg_restore=str(PG_BIN / "pg_restore"),
    )
    assert not outcome.ok
    assert problem in outcome.problem


async def test_it_says_when_pg_restore_is_missing(made: Dumps, tmp_path: Path) -> None:
    """A missing pg_restore is named; the dump is not blamed for it."""
    outcome = await dumps.verify(
        made.custom, "custom", sidecar=False, pg_restore=str(tmp_path / "no-pg_restore")
    )
    assert not outcome.ok
    assert outcome.problem == f"not verified: {tmp_path / 'no-pg_restore'} is not installed"


# --- decompressing and restoring ------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
async def test_it_decompresses_to_a_private_file(
    made: Dumps, tmp_path: Path, compression: dumps.Compression
) -> None:
    """decompress_to writes the original bytes, readable by its owner only."""
    destination = tmp_path / "out.dump"
    await dumps.decompress_to(
        compressed(made.custom, tmp_path, compression), compression, destination
    )
    assert destination.read_bytes() == made.custom.read_bytes()
    assert destination.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
async def test_it_refuses_to_decompress_a_truncated_stream(
    made: Dumps, tmp_path: Path, compression: dumps.Compression
) -> None:
    """A cut-off stream raises CorruptDump rather than leaving a short file that looks whole."""
    broken = truncated(compressed(made.custom, tmp_path, compression), tmp_path)
    with pytest.raises(CorruptDump):
        await dumps.decompress_to(broken, compression, tmp_path / "out.dump")


@pytest.mark.parametrize(
    ("kind", "jobs"),
    [("custom", 2), ("directory", 2), ("tar", 1), ("plain", 1), ("plain_gz", 1), ("plain_zst", 1)],
)
async def test_it_restores_every_format_into_a_real_server(
    pg: PostgresCluster, made: Dumps, scratch_database: str, kind: str, jobs: int
) -> None:
    """pg_restore (custom, directory, tar) and psql (plain, fed decompressed) restore the data."""
    path = getattr(made, kind)
    layout, compression = dumps.detect_format(path)
    failed = await dumps.restore(
        path,
        layout,
        compression,
        database=scratch_database,
        env=restore_env(pg, scratch_database),
        jobs=jobs,
        pg_bin=PG_BIN,
    )
    assert failed is None, failed
    assert pg.psql("SELECT count(*) FROM appointments", database=scratch_database) == "42"


@pytest.mark.parametrize("kind", ["custom", "plain_gz", "plain_zst"])
async def test_it_reports_the_step_that_failed_to_restore(
    pg: PostgresCluster, made: Dumps, scratch_database: str, tmp_path: Path, kind: str
) -> None:
    """A truncated dump fails its restore, and the failing program is named with its error."""
    path = truncated(getattr(made, kind), tmp_path)
    layout, compression = dumps.detect_format(path)
    failed = await dumps.restore(
        path,
        layout,
        compression,
        database=scratch_database,
        env=restore_env(pg, scratch_database),
        jobs=1,
        pg_bin=PG_BIN,
    )
    assert failed is not None
    assert failed.returncode != 0
    assert failed.program in ("pg_restore", "psql", "gzip", "zstd")
    assert failed.last_error


def test_it_finds_client_programs_in_the_given_directory(tmp_path: Path) -> None:
    """pg_bin wins when it holds the program; otherwise an installed version is used."""
    assert dumps.pg_program("pg_restore", PG_BIN) == str(PG_BIN / "pg_restore")
    found = dumps.pg_program("pg_restore", tmp_path)
    assert found != str(tmp_path / "pg_restore")
    assert found.endswith("pg_restore")


# --- running programs -----------------------------------------------------------------------------


async def test_it_keeps_the_stderr_of_a_failing_program() -> None:
    """The exit code and what the program said are in its outcome."""
    [outcome] = await dumps.run_programs(
        [("sh", ["sh", "-c", "echo 'psql: error: no such table' >&2; exit 3"])]
    )
    assert (outcome.program, outcome.returncode) == ("sh", 3)
    assert outcome.last_error == "psql: error: no such table"


async def test_it_pipes_one_program_into_the_next() -> None:
    """stdout of each step feeds the next; the last one's output goes to read_stdout."""
    seen: list[bytes] = []

    async def read(stdout: asyncio.StreamReader) -> None:
        seen.append(await stdout.read())

    outcomes = await dumps.run_programs(
        [("printf", ["printf", "b\\na\\n"]), ("sort", ["sort"])], read_stdout=read
    )
    assert [o.returncode for o in outcomes] == [0, 0]
    assert seen == [b"a\nb\n"]


async def test_it_feeds_a_decompressed_file_on_stdin(made: Dumps) -> None:
    """The stdin stream arrives decompressed, and its outcome comes first."""
    seen: list[bytes] = []

    async def read(stdout: asyncio.StreamReader) -> None:
        seen.append(await stdout.read())

    outcomes = await dumps.run_programs(
        [("cat", ["cat"])], stdin=(made.plain_zst, "zstd"), read_stdout=read
    )
    assert [(o.program, o.returncode) for o in outcomes] == [("zstd", 0), ("cat", 0)]
    assert seen == [made.plain.read_bytes()]


async def test_it_kills_the_whole_process_group_when_cancelled(tmp_path: Path) -> None:
    """A cancelled caller leaves no program behind, nor the children it started."""
    pid_file = tmp_path / "child.pid"
    script = f"sleep 600 & echo $! > {pid_file}; wait"
    task = asyncio.ensure_future(dumps.run_programs([("sh", ["sh", "-c", script])]))
    await eventually(lambda: pid_file.exists() and bool(pid_file.read_text().strip()), timeout=10)
    child = int(pid_file.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: not alive(child), timeout=10)


async def test_a_missing_program_raises_file_not_found(tmp_path: Path) -> None:
    """The caller decides what a missing program means."""
    with pytest.raises(FileNotFoundError):
        await dumps.run_programs([("nothing", [str(tmp_path / "nothing")])])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child not yet reaped is a zombie: dead for our purposes.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()
