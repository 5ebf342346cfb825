"""A restore drill vs plain ``pg_restore --jobs`` of the same dump, side by side in one run.

Builds a database of at least 1 GB on a throwaway cluster (generate_series), dumps it with
``pg_dump -Fc``, then restores the dump by hand (CREATE DATABASE + ``pg_restore --jobs N``) and
with :func:`app.drills.run.run_drill` (same jobs; the whole call: leftover cleanup, create, restore,
one index-backed integrity query, drop). Prints both times and the ratio; the budget is 1.1.

    .venv/bin/python bench/drill.py [--size-gb 1.0] [--jobs 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.drills.run import BackupRef, run_drill
from app.drills.spec import DrillSpec
from tests.servers import PG_BIN, PostgresCluster

BUDGET = 1.1
TABLES = ("appointments", "calls", "leads", "messages")
# One row is about 200 bytes on disk with its two index entries.
BYTES_PER_ROW = 165


def generate(cluster: PostgresCluster, size_gb: float) -> int:
    rows = int(size_gb * 1e9 / BYTES_PER_ROW / len(TABLES)) + 1
    cluster.psql("CREATE DATABASE bench")
    procs = []
    for table in TABLES:
        # Built without indexes, then indexed: the fastest way to load; tables are filled in
        # parallel, one connection each.
        sql = (
            f"CREATE TABLE {table} (id bigint, tenant_id int, created_at timestamptz, body text);"
            f"INSERT INTO {table} SELECT g, g % 1000, now() - g * interval '1 second', "
            f"md5(g::text) || md5((g * 7)::text) FROM generate_series(1, {rows}) g;"
            f"ALTER TABLE {table} ADD PRIMARY KEY (id);"
            f"CREATE INDEX ON {table} (tenant_id, created_at);"
        )
        procs.append(
            subprocess.Popen(
                [
                    str(PG_BIN / "psql"),
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(cluster.port),
                    "-U",
                    "postgres",
                    "-d",
                    "bench",
                    "-c",
                    sql,
                ]
            )
        )
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit("generating the data failed")
    return int(cluster.psql("SELECT pg_database_size('bench')"))


def restore_by_hand(cluster: PostgresCluster, dump: Path, jobs: int, name: str) -> float:
    started = time.perf_counter()
    cluster.psql(f"CREATE DATABASE {name} TEMPLATE template0")
    subprocess.run(
        [
            str(PG_BIN / "pg_restore"),
            "--jobs",
            str(jobs),
            "--no-owner",
            "--no-privileges",
            "-h",
            "127.0.0.1",
            "-p",
            str(cluster.port),
            "-U",
            "postgres",
            "-d",
            name,
            str(dump),
        ],
        check=True,
    )
    elapsed = time.perf_counter() - started
    cluster.psql(f"DROP DATABASE {name}")
    return elapsed


def restore_by_drill(cluster: PostgresCluster, dump: Path, jobs: int) -> tuple[float, float]:
    spec = DrillSpec.model_validate(
        {
            "name": "bench",
            "source": "bench-dumps",
            "target_dsn": cluster.dsn,
            "jobs": jobs,
            "integrity": [
                {
                    "name": "appointments",
                    "sql": "SELECT max(id) FROM appointments",
                    "expect": ">= 1",
                }
            ],
        }
    )
    backup = BackupRef(str(dump), datetime.now(UTC), dump.stat().st_size)
    started = time.perf_counter()
    # The same pg_restore as the restore by hand, so only the drill's own cost differs.
    report = asyncio.run(run_drill(spec, backup, pg_bin=PG_BIN))
    elapsed = time.perf_counter() - started
    if report.status != "pass":
        raise SystemExit(f"the drill failed: {report.message}")
    return elapsed, report.restore_seconds or 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    cluster = PostgresCluster.create(
        {
            "shared_buffers": "256MB",
            "maintenance_work_mem": "256MB",
            "max_wal_size": "8GB",
            "checkpoint_timeout": "1h",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "synchronous_commit": "off",
        },
        name="bench-drill",
    )
    workdir = Path(tempfile.mkdtemp(prefix="drwatch-bench-drill-"))
    try:
        started = time.perf_counter()
        size = generate(cluster, args.size_gb)
        print(f"database: {size / 1e9:.2f} GB in {time.perf_counter() - started:.1f}s")
        if size < args.size_gb * 1e9:
            raise SystemExit(f"the database is smaller than {args.size_gb} GB; lower BYTES_PER_ROW")
        dump = workdir / "bench.dump"
        started = time.perf_counter()
        subprocess.run(
            [
                str(PG_BIN / "pg_dump"),
                "-Fc",
                "-h",
                "127.0.0.1",
                "-p",
                str(cluster.port),
                "-U",
                "postgres",
                "-f",
                str(dump),
                "bench",
            ],
            check=True,
        )
        print(
            f"dump (pg_dump -Fc): {dump.stat().st_size / 1e9:.2f} GB "
            f"in {time.perf_counter() - started:.1f}s"
        )
        cluster.psql("DROP DATABASE bench")

        by_hand: list[float] = []
        by_drill: list[float] = []
        for round_number in range(args.rounds):
            # Alternate the order so neither side always gets the warmer cache.
            order = ("hand", "drill") if round_number % 2 == 0 else ("drill", "hand")
            for side in order:
                if side == "hand":
                    seconds = restore_by_hand(cluster, dump, args.jobs, f"by_hand_{round_number}")
                    by_hand.append(seconds)
                    print(
                        f"round {round_number + 1}: pg_restore --jobs {args.jobs}: {seconds:.1f}s"
                    )
                else:
                    seconds, restore = restore_by_drill(cluster, dump, args.jobs)
                    by_drill.append(seconds)
                    print(
                        f"round {round_number + 1}: drill (jobs {args.jobs}): {seconds:.1f}s "
                        f"(of which restore {restore:.1f}s)"
                    )
        hand, drill = statistics.median(by_hand), statistics.median(by_drill)
        ratio = drill / hand
        verdict = "within" if ratio <= BUDGET else "OVER"
        print(
            f"median pg_restore {hand:.1f}s, drill {drill:.1f}s, ratio {ratio:.3f} "
            f"({verdict} the {BUDGET} budget)"
        )
    finally:
        cluster.destroy()
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()


if __name__ == "__main__":
    main()
