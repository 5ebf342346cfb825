"""`drwatch maintenance start|end|list`: ad hoc windows from the command line, in the store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = """\
checks:
  - {name: database, type: postgres, params: {dsn: "postgresql://postgres@127.0.0.1:1/postgres"}}
  - {name: cache, type: redis, params: {url: "redis://127.0.0.1:1"}}
maintenance:
  - {name: weekly-patch, cron: "0 3 * * 0", duration: 2h, timezone: Europe/Rome,
     checks: [database], reason: OS patches}
"""


def _drwatch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "drwatch.yaml"
    config.write_text(CONFIG)
    env = {
        "PATH": "/usr/bin:/bin",
        # This checkout's code, not an installed drwatch.
        "PYTHONPATH": str(REPO),
        "DRWATCH_CONFIG": str(config),
        "DRWATCH_STATE_URL": f"sqlite+aiosqlite:///{tmp_path}/state.db",
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "maintenance", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_the_restore_runbook_opens_lists_and_ends_a_window(tmp_path: Path) -> None:
    """start (0), a second start of the same name (1), list shows it, end (0), end again (1)."""
    started = _drwatch(
        tmp_path,
        "start",
        "restore",
        "--check",
        "database",
        "--duration",
        "2h",
        "--reason",
        "Restore runbook: stop writes, restore, resume",
    )
    assert started.returncode == 0, started.stderr
    assert "maintenance window restore open until" in started.stdout
    again = _drwatch(tmp_path, "start", "restore", "--duration", "1h", "--reason", "again")
    assert again.returncode == 1
    assert "already open" in again.stderr
    listed = _drwatch(tmp_path, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    windows = {w["name"]: w for w in json.loads(listed.stdout)["windows"]}
    assert windows["restore"]["active"] is True
    assert windows["restore"]["checks"] == ["database"]
    assert windows["weekly-patch"]["source"] == "config"
    ended = _drwatch(tmp_path, "end", "restore")
    assert ended.returncode == 0, ended.stderr
    assert _drwatch(tmp_path, "end", "restore").returncode == 1
    table = _drwatch(tmp_path, "list")
    assert "restore" not in table.stdout
    assert "weekly-patch" in table.stdout


def test_a_bad_window_is_refused_by_field(tmp_path: Path) -> None:
    """A pattern that matches no check and a window longer than 7 days: exit 64, both said."""
    result = _drwatch(
        tmp_path, "start", "x", "--check", "queue-*", "--duration", "8d", "--reason", "r"
    )
    assert result.returncode == 64
    assert "checks.0: 'queue-*' matches no configured check" in result.stderr
    assert "duration: an ad hoc window lasts at most 7d" in result.stderr
