"""Servers, dumps and drills the drill tests share: a source cluster with a booking-like schema,
real pg_dump output of it in every format, and a scratch cluster as the drill target."""

from __future__ import annotations

import gzip
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.drills.spec import DrillSpec
from tests.servers import PG_BIN, PostgresCluster

SCHEMA = """
CREATE TABLE tenants (id int PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE leads (
    id int PRIMARY KEY, tenant_id int REFERENCES tenants, phone text, created_at timestamptz
);
CREATE TABLE appointments (
    id int PRIMARY KEY, tenant_id int REFERENCES tenants, lead_id int REFERENCES leads,
    starts_at timestamptz, created_at timestamptz NOT NULL
);
CREATE TABLE calls (
    id int PRIMARY KEY, tenant_id int REFERENCES tenants, duration_seconds int,
    created_at timestamptz NOT NULL
);
INSERT INTO tenants SELECT g, 'tenant ' || g, now() - interval '90 days'
    FROM generate_series(1, 3) g;
INSERT INTO leads SELECT g, 1 + g % 3, '+1555' || g, now() - g * interval '1 hour'
    FROM generate_series(1, 50) g;
INSERT INTO appointments
    SELECT g, 1 + g % 3, g, now() + g * interval '1 day', now() - g * interval '1 minute'
    FROM generate_series(1, 42) g;
-- Calls stopped being recorded three days ago: a stale table.
INSERT INTO calls SELECT g, 1 + g % 3, 60 + g, now() - interval '3 days' - g * interval '1 minute'
    FROM generate_series(1, 30) g;
"""


@dataclass
class Dumps:
    custom: Path
    plain: Path
    plain_gz: Path
    plain_zst: Path
    directory: Path
    tar: Path
    taken_at: datetime


def pg_dump(dsn: str, *args: str) -> None:
    subprocess.run([str(PG_BIN / "pg_dump"), *args, dsn], check=True, capture_output=True)


def make_dumps(dsn: str, workdir: Path) -> Dumps:
    """The database at ``dsn`` dumped in every format drwatch restores, plain also gzip'd and
    zstd-compressed (by the zstd program, as backup jobs do)."""
    taken_at = datetime.now(UTC)
    custom, plain, directory, tar = (
        workdir / "booking.dump",
        workdir / "booking.sql",
        workdir / "booking.dir",
        workdir / "booking.tar",
    )
    pg_dump(dsn, "-Fc", "-f", str(custom))
    pg_dump(dsn, "-Fp", "-f", str(plain))
    pg_dump(dsn, "-Fd", "-f", str(directory))
    pg_dump(dsn, "-Ft", "-f", str(tar))
    plain_gz = workdir / "booking.sql.gz"
    plain_gz.write_bytes(gzip.compress(plain.read_bytes()))
    plain_zst = workdir / "booking.sql.zst"
    subprocess.run(["zstd", "-q", "-f", str(plain), "-o", str(plain_zst)], check=True)
    return Dumps(custom, plain, plain_gz, plain_zst, directory, tar, taken_at)


def drill(target: PostgresCluster, **overrides: Any) -> DrillSpec:
    document: dict[str, Any] = {
        "name": "monthly-restore",
        "source": "nightly-dumps",
        "target_dsn": target.dsn,
        "rpo": "24h",
        "integrity": [{"name": "tenants", "sql": "SELECT count(*) FROM tenants", "expect": ">= 1"}],
    }
    document.update(overrides)
    return DrillSpec.model_validate(document)


def drill_databases(cluster: PostgresCluster) -> list[str]:
    names = cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE 'drwatch\\_drill\\_%'")
    return [n for n in names.splitlines() if n]


def sleeping_dump(workdir: Path) -> Path:
    """A plain dump whose restore hangs: it creates a table, then sleeps a minute."""
    path = workdir / "sleeping.sql"
    path.write_text(
        "CREATE TABLE tenants (id int);\nINSERT INTO tenants VALUES (1);\nSELECT pg_sleep(60);\n"
    )
    return path
