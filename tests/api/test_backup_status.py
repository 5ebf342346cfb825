"""/api/backup-status and `drwatch backup-status`: newest backup against its RPO, verification."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import running_app, settings_for
from tests.servers import PG_BIN, PostgresCluster


@pytest.fixture(scope="module")
def plain_dump(pg: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real plain-format pg_dump (with PostgreSQL's closing 'dump complete' marker)."""
    pg.psql("DROP DATABASE IF EXISTS shop")
    pg.psql("CREATE DATABASE shop")
    pg.psql(
        "CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 100);", "shop"
    )
    out = tmp_path_factory.mktemp("dump") / "shop.sql"
    subprocess.run([str(PG_BIN / "pg_dump"), "-Fp", "-f", str(out), pg.dsn_for("shop")], check=True)
    return out.read_bytes()


def _write(directory: Path, content: bytes, age_seconds: float) -> Path:
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(time.time() - age_seconds))
    path = directory / f"backup_{stamp}.sql"
    path.write_bytes(content)
    when = time.time() - age_seconds
    os.utime(path, (when, when))
    return path


def _config(directory: Path, rpo: str = "24h") -> dict[str, Any]:
    return {
        "checks": [
            {
                "name": "nightly",
                "type": "backup_files",
                "interval": "1m",
                "params": {"path": str(directory), "pattern": "backup_*.sql", "rpo": rpo},
            }
        ]
    }


async def test_a_fresh_verified_backup_passes(plain_dump: bytes, tmp_path: Path) -> None:
    """200 with age, RPO, size, verification and location of the newest backup."""
    backups = tmp_path / "backups"
    backups.mkdir()
    newest = _write(backups, plain_dump, 3600)
    async with running_app(_config(backups), settings_for(tmp_path)) as running:
        await running.wait_ready(60)
        response = await running.client.get("/api/backup-status")
        head = await running.client.head("/api/backup-status")
    assert response.status_code == 200, response.text
    assert head.status_code == 200 and head.content == b""
    assert response.text.startswith('{"status":"pass"')
    (source,) = response.json()["sources"]
    assert source["within_rpo"] is True
    assert source["verified"] is True
    assert 3500 < source["age_seconds"] < 3800
    assert source["rpo_seconds"] == 86400
    assert source["size_bytes"] == len(plain_dump)
    assert source["location"].endswith(newest.name)


async def test_a_backup_older_than_its_rpo_is_503(plain_dump: bytes, tmp_path: Path) -> None:
    """An uptime monitor sees 503 when the newest backup is outside the RPO."""
    backups = tmp_path / "backups"
    backups.mkdir()
    _write(backups, plain_dump, 2 * 86400)
    async with running_app(_config(backups), settings_for(tmp_path)) as running:
        await running.wait_ready(60)
        response = await running.client.get("/api/backup-status")
        metrics = (await running.client.get("/metrics")).text
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["sources"][0]["within_rpo"] is False
    assert 'drwatch_backup_rpo_seconds{source="nightly"} 86400.0' in metrics
    age = next(
        line
        for line in metrics.splitlines()
        if line.startswith('drwatch_backup_age_seconds{source="nightly"}')
    )
    assert float(age.split()[-1]) > 86400


async def test_a_backup_that_fails_verification_is_503(tmp_path: Path) -> None:
    """The only backup is a truncated dump: not verified, 503, and the output names it."""
    backups = tmp_path / "backups"
    backups.mkdir()
    bad = _write(backups, b"--\n-- PostgreSQL database dump\n--\nCREATE TABLE t (id int);\n", 600)
    settings = settings_for(tmp_path, health_details="always")
    async with running_app(_config(backups), settings) as running:
        await running.wait_ready(60)
        response = await running.client.get("/api/backup-status")
    assert response.status_code == 503
    source = response.json()["sources"][0]
    assert source["verdict"] == "fail"
    assert bad.name in source["output"]


def test_the_cli_prints_backup_status_and_exits_with_its_verdict(
    plain_dump: bytes, tmp_path: Path
) -> None:
    """`drwatch backup-status --json` gives the same report; exit 0 pass, 2 fail."""
    backups = tmp_path / "backups"
    backups.mkdir()
    _write(backups, plain_dump, 3600)
    config = tmp_path / "drwatch.yaml"
    env = {
        "PATH": os.environ["PATH"],
        "DRWATCH_CONFIG": str(config),
        "DRWATCH_STATE_URL": f"sqlite+aiosqlite:///{tmp_path}/state.db",
    }
    for rpo, code in (("24h", 0), ("10m", 2)):
        config.write_text(json.dumps(_config(backups, rpo)))
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "backup-status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == code, result.stderr
        assert json.loads(result.stdout)["sources"][0]["name"] == "nightly"
    table = subprocess.run(
        [sys.executable, "-m", "app.cli", "backup-status"], env=env, capture_output=True, text=True
    )
    assert "nightly" in table.stdout and "verdict: fail" in table.stdout


async def test_a_keyword_monitor_cannot_match_pass_while_one_source_fails(
    plain_dump: bytes, tmp_path: Path
) -> None:
    """One source passes, one is past its RPO: 503, and the only "status" key says fail."""
    fresh, stale = tmp_path / "fresh", tmp_path / "stale"
    fresh.mkdir()
    stale.mkdir()
    _write(fresh, plain_dump, 600)
    _write(stale, plain_dump, 2 * 86400)
    config = _config(fresh)
    config["checks"].append({**_config(stale)["checks"][0], "name": "weekly"})
    async with running_app(config, settings_for(tmp_path)) as running:
        await running.wait_ready(60)
        response = await running.client.get("/api/backup-status")
    assert response.status_code == 503
    assert response.text.startswith('{"status":"fail"')
    assert response.text.count('"status"') == 1
    assert '"status":"pass"' not in response.text
    verdicts = {s["name"]: s["verdict"] for s in response.json()["sources"]}
    assert verdicts == {"nightly": "pass", "weekly": "fail"}


async def test_no_backup_source_is_a_warning_that_says_so(tmp_path: Path) -> None:
    """Nothing proves the service can be restored: warn (200), with a sentence, not pass."""
    config = {"checks": [{"name": "web", "type": "http", "params": {"url": "http://127.0.0.1:9"}}]}
    async with running_app(config, settings_for(tmp_path), run_scheduler=False) as running:
        response = await running.client.get("/api/backup-status")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "warn"
    assert body["output"] == (
        "No backup source is configured: nothing proves this service can be restored."
    )
    assert body["sources"] == []
