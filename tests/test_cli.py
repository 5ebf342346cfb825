"""The drwatch command: check (exit codes for cron and DR drills), db upgrade."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import PostgresCluster, refused_port


def _drwatch(
    tmp_path: Path, yaml_text: str, *args: str, state_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "drwatch.yaml"
    config.write_text(yaml_text)
    env = {
        "PATH": "/usr/bin:/bin",
        # The app of this checkout, not the one the virtualenv was installed from.
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "DRWATCH_CONFIG": str(config),
        "DRWATCH_STATE_URL": state_url or f"sqlite+aiosqlite:///{tmp_path}/state.db",
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def _yaml(*checks: tuple[str, str, str]) -> str:
    lines = ["checks:"]
    for name, criticality, dsn in checks:
        lines.append(
            f"  - {{name: {name}, type: postgres, criticality: {criticality}, timeout: 2s, "
            f"params: {{dsn: '{dsn}'}}}}"
        )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("down_criticality", "exit_code", "verdict"),
    [(None, 0, "pass"), ("degraded", 1, "warn"), ("critical", 2, "fail")],
)
def test_check_exits_with_the_verdict(
    pg: PostgresCluster, tmp_path: Path, down_criticality: str | None, exit_code: int, verdict: str
) -> None:
    """0 pass, 1 warn, 2 fail: usable from cron and during DR drills."""
    checks = [("db", "critical", pg.dsn)]
    if down_criticality:
        refused = f"postgresql://postgres:pw-xyz-123@127.0.0.1:{refused_port()}/postgres"
        checks.append(("down", down_criticality, refused))
    result = _drwatch(tmp_path, _yaml(*checks), "check")
    assert result.returncode == exit_code, result.stderr
    assert f"verdict: {verdict}" in result.stdout
    assert "pw-xyz-123" not in result.stdout + result.stderr


def test_check_json_reports_every_check(pg: PostgresCluster, tmp_path: Path) -> None:
    """--json gives the verdict and each check's status and output."""
    refused = f"postgresql://postgres@127.0.0.1:{refused_port()}/postgres"
    result = _drwatch(
        tmp_path, _yaml(("db", "critical", pg.dsn), ("down", "info", refused)), "check", "--json"
    )
    report = json.loads(result.stdout)
    assert report["status"] == "pass"
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses == {"db": "pass", "down": "fail"}


def test_check_names_an_unknown_check(pg: PostgresCluster, tmp_path: Path) -> None:
    """An unknown check name is a usage error (EX_USAGE, 64), said before anything runs."""
    down = f"postgresql://postgres@127.0.0.1:{refused_port()}/postgres"
    yaml_text = _yaml(("db", "critical", pg.dsn), ("down", "critical", down))
    result = _drwatch(tmp_path, yaml_text, "check", "db", "nosuch")
    assert result.returncode == 64
    assert "no check named 'nosuch' (known: db, down)" in result.stderr
    assert result.stdout == ""


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    """`drwatch db upgrade` migrates the store named by DRWATCH_STATE_URL."""
    result = _drwatch(tmp_path, "checks: []\n", "db", "upgrade")
    assert result.returncode == 0, result.stderr
    tables = {
        row[0]
        for row in sqlite3.connect(tmp_path / "state.db").execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    assert {"check_transitions", "heartbeat_events", "drill_runs", "leases"} <= tables


def test_db_upgrade_against_a_stopped_store_says_so_in_one_sentence(tmp_path: Path) -> None:
    """Nothing listens at the store's address: one line on stderr, exit 1, no traceback."""
    url = f"postgresql+asyncpg://postgres:pw-stopped-77@127.0.0.1:{refused_port()}/state"
    result = _drwatch(tmp_path, "checks: []\n", "db", "upgrade", state_url=url)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "connection refused" in line
    assert "Traceback" not in result.stderr
    assert "pw-stopped-77" not in result.stderr + result.stdout


def test_db_upgrade_with_a_wrong_password_says_so_in_one_sentence(
    pg: PostgresCluster, tmp_path: Path
) -> None:
    """The store rejects the password: one line naming the problem, exit 1."""
    pg.add_password_user("migrator", "right-password-9")
    url = f"postgresql+asyncpg://migrator:wrong-password-9@127.0.0.1:{pg.port}/postgres"
    result = _drwatch(tmp_path, "checks: []\n", "db", "upgrade", state_url=url)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "rejected the user or password" in line
    assert "wrong-password-9" not in result.stderr
