"""The source and target clusters and the dumps of the drill tests, made once for the package."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.drills.scratch import SCHEMA, Dumps, make_dumps
from tests.servers import PostgresCluster


@pytest.fixture(scope="package")
def source() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster.create(name="drill-source")
    cluster.psql("CREATE DATABASE booking")
    cluster.psql(SCHEMA, database="booking")
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="package")
def target() -> Iterator[PostgresCluster]:
    # A backend notices a vanished client within 100 ms, as a killed drill leaves some behind.
    cluster = PostgresCluster.create(
        {"client_connection_check_interval": "100ms"}, name="drill-target"
    )
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="package")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="drwatch-drill-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package")
def dumps(source: PostgresCluster, workdir: Path) -> Dumps:
    return make_dumps(source.dsn_for("booking"), workdir)
