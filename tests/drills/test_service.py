"""Restore drills inside drwatch: config wiring, `drwatch drill run`, the API and metrics."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import parse_config
from app.drills.service import backup_from_results
from app.drills.spec import DrillSpec
from app.errors import ConfigError
from tests.harness import running_app, settings_for
from tests.servers import PG_BIN, PostgresCluster


@pytest.fixture(scope="module")
def scratch() -> Iterator[PostgresCluster]:
    """The scratch server drills restore into."""
    cluster = PostgresCluster.create(name="scratch")
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="module")
def dump_dir(pg: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with one custom-format dump of a small booking database, an hour old."""
    pg.psql("DROP DATABASE IF EXISTS booking")
    pg.psql("CREATE DATABASE booking")
    pg.psql(
        "CREATE TABLE tenants (id int primary key, created_at timestamptz default now());"
        "INSERT INTO tenants (id) SELECT generate_series(1, 25);",
        "booking",
    )
    directory = tmp_path_factory.mktemp("dumps")
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(time.time() - 3600))
    dump = directory / f"backup_{stamp}.dump"
    subprocess.run(
        [str(PG_BIN / "pg_dump"), "-Fc", "-f", str(dump), pg.dsn_for("booking")], check=True
    )
    old = time.time() - 3600
    os.utime(dump, (old, old))
    return directory


def _config(
    pg: PostgresCluster, scratch: PostgresCluster, dump_dir: Path, **drill: Any
) -> dict[str, Any]:
    return {
        "checks": [
            {"name": "db", "type": "postgres", "params": {"dsn": pg.dsn_for("booking")}},
            {
                "name": "dumps",
                "type": "backup_files",
                "interval": "5m",
                "params": {"path": str(dump_dir), "pattern": "backup_*.dump", "rpo": "24h"},
            },
        ],
        "drills": [
            {
                "name": "monthly",
                "source": "dumps",
                "target_dsn": scratch.dsn,
                "rto": "4h",
                "integrity": [
                    {"name": "tenants", "sql": "SELECT count(*) FROM tenants", "expect": ">= 20"}
                ],
                **drill,
            }
        ],
    }


def test_the_config_rejects_a_drill_on_a_production_database(
    pg: PostgresCluster, scratch: PostgresCluster, dump_dir: Path
) -> None:
    """A target equal to a monitored postgres check, and a source that is no backup: refused."""
    document = _config(pg, scratch, dump_dir, target_dsn=pg.dsn_for("booking"))
    document["drills"].append(
        {"name": "bad-source", "source": "db", "target_dsn": scratch.dsn, "integrity": []}
    )
    with pytest.raises(ConfigError) as info:
        parse_config(document)
    errors = dict(info.value.errors)
    assert "monitored postgres check" in errors["drills.0.target_dsn"]
    assert "backup_files, rds or s3" in errors["drills.1.source"]


def test_drwatch_drill_run_restores_and_reports(
    pg: PostgresCluster, scratch: PostgresCluster, dump_dir: Path, tmp_path: Path
) -> None:
    """The CLI finds the newest backup, restores it into the scratch server and exits 0."""
    config = tmp_path / "drwatch.yaml"
    config.write_text(json.dumps(_config(pg, scratch, dump_dir)))
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "drill", "run", "monthly"],
        env={
            "PATH": os.environ["PATH"],
            "DRWATCH_CONFIG": str(config),
            "DRWATCH_STATE_URL": f"sqlite+aiosqlite:///{tmp_path}/state.db",
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "restor" in result.stdout.lower()
    assert "tenants" in result.stdout
    assert (
        scratch.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'drwatch_drill_%'") == "0"
    )


async def test_a_drill_started_through_the_api_shows_in_runs_and_metrics(
    pg: PostgresCluster, scratch: PostgresCluster, dump_dir: Path, tmp_path: Path
) -> None:
    """POST /api/drills/{name}/run (admin) -> 202; history and drwatch_restore_drill_* follow."""
    settings = settings_for(tmp_path, admin_token="admin-token-42")
    async with running_app(_config(pg, scratch, dump_dir), settings) as running:
        await running.wait_ready(60)
        unauthorized = await running.client.post("/api/drills/monthly/run")
        assert unauthorized.status_code == 401
        started = await running.client.post(
            "/api/drills/monthly/run", headers={"Authorization": "Bearer admin-token-42"}
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        drills = running.runtime.drills
        await running.wait_until(lambda: "monthly" not in drills.running, 120)
        runs = (await running.client.get("/api/drills/monthly/runs")).json()["runs"]
        assert runs[0]["run_id"] == run_id
        assert runs[0]["status"] == "pass", runs[0]
        metrics = (await running.client.get("/metrics")).text
    assert 'drwatch_restore_drill_runs_total{drill="monthly",result="pass"} 1.0' in metrics
    assert 'drwatch_restore_drill_rto_seconds{drill="monthly"} 14400.0' in metrics
    success = next(
        line
        for line in metrics.splitlines()
        if line.startswith('drwatch_restore_drill_last_success_timestamp_seconds{drill="monthly"}')
    )
    assert abs(float(success.split()[-1]) - time.time()) < 300


def test_a_drill_restores_only_a_backup_its_source_reported_and_did_not_reject() -> None:
    """No report yet, or a newest backup that failed verification, means nothing to restore."""
    reported: dict[str, dict[str, Any]] = {
        "verified-dumps": {
            "location": "/backups/backup_20261121.dump",
            "last_backup_at": "2026-11-21T03:00:00Z",
            "verified": True,
        },
        "broken-dumps": {
            "location": "/backups/backup_20261121.dump",
            "last_backup_at": "2026-11-21T03:00:00Z",
            "verified": False,
        },
    }
    resolve = backup_from_results(reported.get)
    base = {"name": "d", "target_dsn": "postgresql://u@scratch/postgres"}
    backup = resolve(DrillSpec.model_validate({**base, "source": "verified-dumps"}))
    assert backup.location == "/backups/backup_20261121.dump"
    with pytest.raises(ValueError, match="failed verification"):
        resolve(DrillSpec.model_validate({**base, "source": "broken-dumps"}))
    with pytest.raises(ValueError, match="has not reported a backup"):
        resolve(DrillSpec.model_validate({**base, "source": "never-ran"}))


async def test_a_broken_newest_dump_is_skipped_for_the_newest_verified_one(
    pg: PostgresCluster, scratch: PostgresCluster, dump_dir: Path, tmp_path: Path
) -> None:
    """The newest dump is cut short: the drill restores the older verified one and says which
    backup it skipped and why, while /api/backup-status still reports the broken newest."""
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (good,) = dump_dir.iterdir()
    shutil.copy2(good, dumps / good.name)
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(time.time() - 600))
    broken = dumps / f"backup_{stamp}.dump"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    # Finished ten minutes ago, not still being written.
    os.utime(broken, (time.time() - 600, time.time() - 600))
    settings = settings_for(tmp_path, admin_token="admin-token-42")
    async with running_app(_config(pg, scratch, dumps), settings) as running:
        await running.wait_ready(60)
        started = await running.client.post(
            "/api/drills/monthly/run", headers={"Authorization": "Bearer admin-token-42"}
        )
        assert started.status_code == 202, started.text
        drills = running.runtime.drills
        await running.wait_until(lambda: "monthly" not in drills.running, 120)
        report = drills.last_runs["monthly"]
        status = await running.client.get("/api/backup-status")
    assert report["status"] == "pass", report["message"]
    assert report["backup_location"] == str(dumps / good.name)
    assert len(report["skipped_backups"]) == 1
    assert report["skipped_backups"][0].startswith(f"{broken.name}: ")
    assert status.status_code == 503
    (source,) = status.json()["sources"]
    assert source["verified"] is False
    (drill,) = status.json()["drills"]
    assert drill["last_run"]["result"] == "pass"
    assert drill["last_run"]["skipped_backups"] == report["skipped_backups"]


def test_drill_run_json_prints_only_the_report_on_stdout(
    pg: PostgresCluster, scratch: PostgresCluster, dump_dir: Path, tmp_path: Path
) -> None:
    """`--json`: stdout parses as the report; progress lines went to stderr."""
    config = tmp_path / "drwatch.yaml"
    config.write_text(json.dumps(_config(pg, scratch, dump_dir)))
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "drill", "run", "monthly", "--json"],
        env={
            "PATH": os.environ["PATH"],
            "DRWATCH_CONFIG": str(config),
            "DRWATCH_STATE_URL": f"sqlite+aiosqlite:///{tmp_path}/state.db",
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "pass"
    assert report["drill"] == "monthly"
    assert "finding the newest backup of dumps" in result.stderr
    assert "restoring" in result.stderr


async def test_a_drill_started_before_its_source_reported_runs_the_source_check_itself(
    pg: PostgresCluster, scratch: PostgresCluster, dump_dir: Path, tmp_path: Path
) -> None:
    """Right after start-up (no source result yet) a drill started through the API still
    restores: it runs the source check first instead of failing for want of a backup."""
    settings = settings_for(tmp_path, admin_token="admin-token-42")
    async with running_app(_config(pg, scratch, dump_dir), settings, run_scheduler=False) as app:
        assert app.runtime.monitor.snapshot.checks["dumps"].last_result is None
        started = await app.client.post(
            "/api/drills/monthly/run", headers={"Authorization": "Bearer admin-token-42"}
        )
        assert started.status_code == 202, started.text
        drills = app.runtime.drills
        await app.wait_until(lambda: "monthly" not in drills.running, 120)
        runs = (await app.client.get("/api/drills/monthly/runs")).json()["runs"]
        metrics = (await app.client.get("/metrics")).text
    assert [(run["run_id"], run["status"]) for run in runs] == [(started.json()["run_id"], "pass")]
    report = runs[0]["report"]
    assert report["database"].startswith("drwatch_drill_monthly_")
    assert report["message"]
    assert 'drwatch_restore_drill_runs_total{drill="monthly",result="pass"} 1.0' in metrics


async def test_a_drill_run_elsewhere_shows_with_its_integrity_results(
    pg: PostgresCluster, scratch: PostgresCluster, dump_dir: Path, tmp_path: Path
) -> None:
    """`drwatch drill run` in another process, on the shared PostgreSQL store: the running
    server shows that run with its integrity results in /api/backup-status, and its success
    time and duration in /metrics, within one background refresh."""
    pg.psql("DROP DATABASE IF EXISTS drwatch_shared_state")
    pg.psql("CREATE DATABASE drwatch_shared_state")
    state_url = f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/drwatch_shared_state"
    config = tmp_path / "drwatch.yaml"
    config.write_text(json.dumps(_config(pg, scratch, dump_dir)))
    settings = settings_for(tmp_path, state_url=state_url, migrate_on_start=True, history_refresh=1)
    async with running_app(_config(pg, scratch, dump_dir), settings) as app:
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "app.cli", "drill", "run", "monthly", "--json"],
            env={
                "PATH": os.environ["PATH"],
                "PYTHONPATH": str(Path(__file__).parents[2]),
                "DRWATCH_CONFIG": str(config),
                "DRWATCH_STATE_URL": state_url,
                "DRWATCH_SERVICE_ID": "cli",
            },
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert cli.returncode == 0, cli.stderr
        run_id = json.loads(cli.stdout)["run_id"]

        async def shown() -> bool:
            status = (await app.client.get("/api/backup-status")).json()
            last = status["drills"][0]["last_run"]
            return last is not None and last["run_id"] == run_id

        await app.wait_until(shown, 30)
        status = (await app.client.get("/api/backup-status")).json()
        metrics = (await app.client.get("/metrics")).text
    drill = status["drills"][0]
    assert drill["last_run"]["result"] == "pass"
    assert [
        (check["name"], check["observed"], check["passed"])
        for check in drill["last_run"]["integrity"]
    ] == [("tenants", 25, True)]
    values = {
        line.split()[0]: float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("drwatch_restore_drill_")
    }
    assert values['drwatch_restore_drill_duration_seconds{drill="monthly"}'] > 0
    success = values['drwatch_restore_drill_last_success_timestamp_seconds{drill="monthly"}']
    assert abs(success - time.time()) < 300
