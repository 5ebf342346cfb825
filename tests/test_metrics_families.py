"""Every metric family drwatch exports, read from a real drwatch's /metrics with plausible values.

The shipped alert rules and the dashboard read these names; most values come from check details
(``tls_cert_expiry_timestamp_seconds``, ``wal_archive_age_seconds``, ...), so renaming a details
key or a family must fail here rather than silently stop an alert. One drwatch runs against real
servers: an archiving PostgreSQL primary, its streaming replica, a backup directory with a real
pg_dump, a TLS endpoint and a scratch server for a restore drill that runs through the API.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from app.runtime import drwatch_version
from tests.fakes.endpoint import Endpoint
from tests.fakes.tls import TestCA
from tests.harness import RunningApp, running_app, settings_for
from tests.polling import eventually
from tests.servers import PG_BIN, PostgresCluster

ADMIN_TOKEN = "metrics-admin-token-7"
DETAILS_TOKEN = "metrics-details-token-7"
JSON_PATHS = (
    "/health",
    "/health/db",
    "/api/checks",
    "/api/checks/dumps",
    "/api/checks/db/history",
    "/api/backup-status",
    "/api/drills/monthly/runs",
    "/api/scheduler",
)
# RFC 3339 in UTC, as every response writes a point in time.
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
LOOKS_LIKE_A_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
BACKUP_AGE = 3600.0
RPO = 86400.0
WAL_RPO = 900.0
MAX_LAG = 900.0
RTO = 14400.0
INTERVALS = {"db": 2.0, "replica": 2.0, "wal": 2.0, "dumps": 300.0, "cert": 60.0}

# What drwatch exports today; the names the rules, the dashboard and docs/metrics.md rely on.
FAMILIES = {
    "drwatch_check_up",
    "drwatch_check_status",
    "drwatch_check_duration_seconds",
    "drwatch_check_last_run_timestamp_seconds",
    "drwatch_check_interval_seconds",
    "drwatch_check_runs",
    "drwatch_check_overruns",
    "drwatch_health_status",
    "drwatch_backup_last_success_timestamp_seconds",
    "drwatch_backup_age_seconds",
    "drwatch_backup_rpo_seconds",
    "drwatch_backup_size_bytes",
    "drwatch_backup_verified",
    "drwatch_wal_archive_age_seconds",
    "drwatch_wal_archive_rpo_seconds",
    "drwatch_replication_lag_seconds",
    "drwatch_replication_lag_max_seconds",
    "drwatch_tls_cert_expiry_timestamp_seconds",
    "drwatch_restore_drill_last_success_timestamp_seconds",
    "drwatch_restore_drill_duration_seconds",
    "drwatch_restore_drill_rto_seconds",
    "drwatch_restore_drill_runs",
    "drwatch_scheduler_lag_seconds",
    "drwatch_scheduler_up",
    "drwatch_engine_saturation_ratio",
    "drwatch_build_info",
    "drwatch_store_up",
    "drwatch_store_pending_writes",
    "drwatch_store_write_failures",
    "drwatch_store_dropped_writes",
    "drwatch_dr_ready",
    "drwatch_dr_expected_data_loss_seconds",
    "drwatch_dr_expected_recovery_seconds",
    "drwatch_slo_availability_ratio",
    "drwatch_slo_error_budget_remaining_ratio",
    "drwatch_incidents_open",
    "drwatch_recovery_point_timestamp_seconds",
    "drwatch_maintenance_active",
    # Exported only while some window is defined: the config below has one, far in the future.
    "drwatch_maintenance_window_info",
}


@dataclass
class Scrape:
    """One /metrics answer, parsed, and what the test knew when it was taken."""

    samples: dict[str, list[Sample]]  # by family name
    types: dict[str, str]
    started_at: float  # before the app started
    scraped_at: float
    drill_started_at: float
    tls_not_after: dt.datetime
    dump_size: int
    dump_taken: float
    overruns: dict[str, int]
    runs: dict[str, dict[str, int]]
    criticality: dict[str, str]
    # JSON answers of the API taken from the same drwatch, by path.
    bodies: dict[str, Any]

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample called ``name`` (``..._total`` for a counter) with
        exactly these labels."""
        found = [
            sample.value
            for samples in self.samples.values()
            for sample in samples
            if sample.name == name and sample.labels == labels
        ]
        assert len(found) == 1, f"{name}{labels}: {found}"
        return float(found[0])

    def labels(self, family: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples.get(family, [])}


def _archive_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="drwatch-metrics-wal-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    return directory


@pytest.fixture(scope="module")
def primary() -> Iterator[PostgresCluster]:
    """A primary that archives WAL with cp, so wal_archive has a last archived segment."""
    directory = _archive_dir()
    cluster = PostgresCluster.create(
        {"archive_mode": "on", "archive_command": f"cp %p {directory}/%f", "archive_timeout": "0"},
        name="metrics-primary",
    )
    yield cluster
    cluster.destroy()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def replica(primary: PostgresCluster) -> Iterator[PostgresCluster]:
    cluster = primary.replica(name="metrics-replica")
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="module")
def dump_dir(pg: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One custom-format dump of a small booking database, named and dated an hour ago."""
    pg.psql("DROP DATABASE IF EXISTS metrics_booking")
    pg.psql("CREATE DATABASE metrics_booking")
    pg.psql(
        "CREATE TABLE tenants (id int primary key);"
        "INSERT INTO tenants SELECT generate_series(1, 5)",
        "metrics_booking",
    )
    directory = tmp_path_factory.mktemp("metrics-dumps")
    taken = time.time() - BACKUP_AGE
    dump = directory / f"backup_{time.strftime('%Y%m%d_%H%M%S', time.gmtime(taken))}.dump"
    subprocess.run(
        [str(PG_BIN / "pg_dump"), "-Fc", "-f", str(dump), pg.dsn_for("metrics_booking")],
        check=True,
    )
    os.utime(dump, (taken, taken))
    return directory


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Endpoint, TestCA, Any]]:
    directory = tmp_path_factory.mktemp("metrics-tls")
    ca = TestCA(directory)
    leaf = ca.leaf(not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
    site = Endpoint(tls=leaf.server_context(directory, "site"))
    yield site, ca, leaf
    site.stop()


def _check(name: str, type_name: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_name,
        "interval": f"{INTERVALS[name]}s",
        "fall": 1,
        "rise": 1,
        "params": params,
    }


async def _switch_wal_and_wait(cluster: PostgresCluster) -> None:
    before = int(cluster.psql("SELECT archived_count FROM pg_stat_archiver"))
    cluster.psql("CREATE TABLE IF NOT EXISTS probe (id int); INSERT INTO probe VALUES (1)")
    cluster.psql("SELECT pg_switch_wal()")
    await eventually(
        lambda: int(cluster.psql("SELECT archived_count FROM pg_stat_archiver")) > before, 30
    )


async def _run_drill(running: RunningApp) -> None:
    response = await running.client.post(
        "/api/drills/monthly/run", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert response.status_code == 202, response.text
    drills = running.runtime.drills
    await running.wait_until(lambda: "monthly" not in drills.running, 120)


@pytest.fixture(scope="module")
async def scrape(
    pg: PostgresCluster,
    primary: PostgresCluster,
    replica: PostgresCluster,
    dump_dir: Path,
    tls_site: tuple[Endpoint, TestCA, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Scrape]:
    site, ca, leaf = tls_site
    await _switch_wal_and_wait(primary)
    await eventually(lambda: replica.psql("SELECT pg_is_in_recovery()") == "t", 30)
    config = {
        "checks": [
            _check("db", "postgres", {"dsn": primary.dsn, "expect_role": "primary"}),
            {
                **_check(
                    "replica",
                    "postgres",
                    {"dsn": replica.dsn, "expect_role": "replica", "max_replication_lag": "15m"},
                ),
                # The streaming replica is the standby: the drwatch_dr_* families appear.
                "labels": {"region": "dr"},
            },
            _check("wal", "wal_archive", {"dsn": primary.dsn, "rpo": "15m"}),
            _check(
                "dumps",
                "backup_files",
                {"path": str(dump_dir), "pattern": "backup_*.dump", "rpo": "24h"},
            ),
            _check(
                "cert", "tls", {"host": "127.0.0.1", "port": site.port, "ca_file": str(ca.ca_file)}
            ),
        ],
        "drills": [
            {
                "name": "monthly",
                "source": "dumps",
                "target_dsn": pg.dsn,
                "rto": "4h",
                "integrity": [
                    {"name": "tenants", "sql": "SELECT count(*) FROM tenants", "expect": ">= 5"}
                ],
            }
        ],
        # Defined but not open: every check reports drwatch_maintenance_active 0.
        "maintenance": [
            {
                "name": "cert-rotation",
                "checks": ["cert"],
                "start": "2099-01-01T00:00:00Z",
                "end": "2099-01-01T01:00:00Z",
                "reason": "rotate the site certificate",
            }
        ],
    }
    tmp_path = tmp_path_factory.mktemp("metrics-state")
    started_at = time.time()
    settings = settings_for(tmp_path, admin_token=ADMIN_TOKEN, details_token=DETAILS_TOKEN)
    async with running_app(config, settings) as running:
        await running.wait_ready(120)
        drill_started_at = time.time()
        await _run_drill(running)
        await running.runtime.writer.flush()
        # The history families come from the history cache: read what was just written.
        assert await running.runtime.history.refresh()
        monitor = running.runtime.monitor
        await running.wait_until(
            lambda: all(s.effective is not None for s in monitor.snapshot.checks.values()), 30
        )
        response = await running.client.get("/metrics")
        scraped_at = time.time()
        bodies = {}
        for path in JSON_PATHS:
            answer = await running.client.get(
                path, headers={"Authorization": f"Bearer {DETAILS_TOKEN}"}
            )
            assert answer.status_code == 200, (path, answer.text)
            bodies[path] = answer.json()
        scheduler = running.runtime.scheduler
        overruns = {name: scheduler.overruns.get(name, 0) for name in INTERVALS}
        runs = {name: dict(monitor.state(name).runs) for name in INTERVALS}
        outputs = {name: monitor.state(name).output for name in INTERVALS}
        criticality = {name: monitor.state(name).config.criticality for name in INTERVALS}
    assert response.status_code == 200
    samples: dict[str, list[Sample]] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(response.text):
        samples[family.name] = list(family.samples)
        types[family.name] = family.type
    # Every check passes, or the values below would not mean what they should.
    for name in INTERVALS:
        status = [s for s in samples["drwatch_check_status"] if s.labels["check"] == name]
        assert {s.labels["status"] for s in status if s.value == 1.0} == {"pass"}, outputs[name]
    yield Scrape(
        samples=samples,
        types=types,
        started_at=started_at,
        scraped_at=scraped_at,
        drill_started_at=drill_started_at,
        tls_not_after=leaf.not_after,
        dump_size=next(dump_dir.iterdir()).stat().st_size,
        dump_taken=next(dump_dir.iterdir()).stat().st_mtime,
        overruns=overruns,
        runs=runs,
        criticality=criticality,
        bodies=bodies,
    )


def test_every_family_is_exported(scrape: Scrape) -> None:
    """The exported drwatch_* families are exactly the known ones, none without samples."""
    exported = {name for name in scrape.samples if name.startswith("drwatch_")}
    assert exported == FAMILIES
    for name in FAMILIES:
        assert scrape.samples[name], f"{name} has no samples"


def test_history_families(scrape: Scrape) -> None:
    """SLO ratios per window, open incidents and the newest recovery point, from the store."""
    for window in ("1d", "7d", "30d", "90d"):
        assert scrape.value("drwatch_slo_availability_ratio", window=window) == 1.0
        assert scrape.value("drwatch_slo_error_budget_remaining_ratio", window=window) == 1.0
    assert scrape.value("drwatch_incidents_open") == 0.0
    point = scrape.value("drwatch_recovery_point_timestamp_seconds", source="dumps")
    assert abs(point - scrape.dump_taken) < 1


def test_check_families(scrape: Scrape) -> None:
    """check_up, check_status, duration, last run, interval, runs and overruns for every check."""
    types = {
        "db": "postgres",
        "replica": "postgres",
        "wal": "wal_archive",
        "dumps": "backup_files",
        "cert": "tls",
    }
    assert scrape.labels("drwatch_check_up", "check") == set(types)
    for name, type_name in types.items():
        labels = {"check": name, "type": type_name, "criticality": scrape.criticality[name]}
        assert scrape.value("drwatch_check_up", **labels) == 1.0
        states = {
            s.labels["status"]: s.value
            for s in scrape.samples["drwatch_check_status"]
            if s.labels["check"] == name
        }
        assert states == {"pass": 1.0, "warn": 0.0, "fail": 0.0, "pending": 0.0}
        duration = scrape.value("drwatch_check_duration_seconds", check=name)
        assert 0 < duration < scrape.scraped_at - scrape.started_at
        last_run = scrape.value("drwatch_check_last_run_timestamp_seconds", check=name)
        assert scrape.started_at <= last_run <= scrape.scraped_at
        assert scrape.value("drwatch_check_interval_seconds", check=name) == INTERVALS[name]
        runs = scrape.value("drwatch_check_runs_total", check=name, result="pass")
        assert runs == scrape.runs[name]["pass"] >= 1
        overruns = scrape.value("drwatch_check_overruns_total", check=name)
        assert overruns == scrape.overruns[name]
    assert scrape.types["drwatch_check_runs"] == "counter"
    assert scrape.types["drwatch_check_overruns"] == "counter"


def test_health_build_and_scheduler(scrape: Scrape) -> None:
    """health_status 2 (pass), build_info with drwatch's version, a ticking scheduler that
    keeps up."""
    assert scrape.value("drwatch_health_status") == 2.0
    assert scrape.value("drwatch_build_info", version=drwatch_version()) == 1.0
    assert scrape.value("drwatch_scheduler_up") == 1.0
    # A handful of checks never saturate the engine.
    assert scrape.value("drwatch_engine_saturation_ratio") == 1.0
    lag = scrape.value("drwatch_scheduler_lag_seconds")
    assert 0 <= lag < 5.0


def test_backup_families(scrape: Scrape) -> None:
    """The newest dump's time, age, size and verification, and the source's RPO."""
    last = scrape.value("drwatch_backup_last_success_timestamp_seconds", source="dumps")
    # The dump's name carries its time to the second.
    assert last == pytest.approx(scrape.started_at - BACKUP_AGE, abs=5)
    age = scrape.value("drwatch_backup_age_seconds", source="dumps")
    assert age == pytest.approx(scrape.scraped_at - last, abs=5)
    assert scrape.value("drwatch_backup_rpo_seconds", source="dumps") == RPO
    assert scrape.value("drwatch_backup_size_bytes", source="dumps") == scrape.dump_size
    assert scrape.value("drwatch_backup_verified", source="dumps") == 1.0
    # The WAL archive is a backup source too: its recovery point is the last archived segment,
    # switched moments before drwatch started.
    assert scrape.labels("drwatch_backup_age_seconds", "source") == {"dumps", "wal"}
    wal_last = scrape.value("drwatch_backup_last_success_timestamp_seconds", source="wal")
    assert scrape.started_at - 120 <= wal_last <= scrape.scraped_at
    assert scrape.value("drwatch_backup_rpo_seconds", source="wal") == WAL_RPO


def test_wal_archive_families(scrape: Scrape) -> None:
    """The WAL archive's age (a segment was archived moments before start) and its RPO."""
    age = scrape.value("drwatch_wal_archive_age_seconds", check="wal")
    assert 0 <= age < scrape.scraped_at - scrape.started_at + 60
    assert scrape.value("drwatch_wal_archive_rpo_seconds", check="wal") == WAL_RPO
    assert scrape.labels("drwatch_wal_archive_age_seconds", "check") == {"wal"}


def test_replication_families(scrape: Scrape) -> None:
    """The replica's lag within its limit, and the limit; the primary has no lag."""
    lag = scrape.value("drwatch_replication_lag_seconds", check="replica")
    assert 0 <= lag < MAX_LAG
    assert scrape.value("drwatch_replication_lag_max_seconds", check="replica") == MAX_LAG
    assert scrape.labels("drwatch_replication_lag_seconds", "check") == {"replica"}


def test_tls_family(scrape: Scrape) -> None:
    """The leaf certificate's notAfter, to the second."""
    expiry = scrape.value("drwatch_tls_cert_expiry_timestamp_seconds", check="cert")
    assert expiry == pytest.approx(scrape.tls_not_after.timestamp(), abs=1)
    assert scrape.labels("drwatch_tls_cert_expiry_timestamp_seconds", "check") == {"cert"}


def test_restore_drill_families(scrape: Scrape) -> None:
    """The drill run through the API: its success time, duration, RTO and one passing run."""
    success = scrape.value("drwatch_restore_drill_last_success_timestamp_seconds", drill="monthly")
    assert scrape.drill_started_at <= success <= scrape.scraped_at
    duration = scrape.value("drwatch_restore_drill_duration_seconds", drill="monthly")
    assert 0 < duration <= scrape.scraped_at - scrape.drill_started_at
    assert scrape.value("drwatch_restore_drill_rto_seconds", drill="monthly") == RTO
    assert scrape.value("drwatch_restore_drill_runs_total", drill="monthly", result="pass") == 1.0
    assert scrape.types["drwatch_restore_drill_runs"] == "counter"


def test_store_families(scrape: Scrape) -> None:
    """A healthy store: up, nothing pending, no failed or dropped writes."""
    assert scrape.value("drwatch_store_up") == 1.0
    assert scrape.value("drwatch_store_pending_writes") == 0.0
    assert scrape.value("drwatch_store_write_failures_total") == 0.0
    assert scrape.value("drwatch_store_dropped_writes_total") == 0.0
    assert scrape.types["drwatch_store_write_failures"] == "counter"
    assert scrape.types["drwatch_store_dropped_writes"] == "counter"


def test_maintenance_families(scrape: Scrape) -> None:
    """Every check is outside a window (0); the defined window is described with its source."""
    assert scrape.labels("drwatch_maintenance_active", "check") == set(INTERVALS)
    for name in INTERVALS:
        assert scrape.value("drwatch_maintenance_active", check=name) == 0.0
    # Scrape.value() takes the metric's name as `name`, which is also this family's label.
    info = [(s.labels, s.value) for s in scrape.samples["drwatch_maintenance_window_info"]]
    assert info == [({"name": "cert-rotation", "source": "config", "failover": "false"}, 1.0)]


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


def test_every_timestamp_in_every_response_is_rfc3339_utc(scrape: Scrape) -> None:
    """Times in /health, /api/checks, history, backup status and drill runs read 2026-...Z."""
    seen = 0
    for url, body in scrape.bodies.items():
        for path, text in _strings(body):
            if LOOKS_LIKE_A_TIME.match(text):
                seen += 1
                assert RFC3339_UTC.match(text), f"{url} {path}: {text!r}"
    # The drill's report and the checks' results carry many times: the walk found them.
    assert seen > 20


def test_standby_readiness_families(scrape: Scrape) -> None:
    """The replica is the standby: ready, its lag the expected loss, the RTO the recovery time
    (no drill restores into an instance)."""
    assert scrape.value("drwatch_dr_ready") == 1.0
    loss = scrape.value("drwatch_dr_expected_data_loss_seconds")
    assert loss == scrape.value("drwatch_replication_lag_seconds", check="replica")
    assert scrape.value("drwatch_dr_expected_recovery_seconds") == RTO
