"""Tests of what drwatch ships for deployment: alert rules, the Alertmanager example, the chart.

They drive the real programs (promtool, amtool, helm). Where one is missing on a developer's
machine the test is skipped with the way to install it; under CI (``CI`` set) a missing program
fails the test instead, so a broken CI image cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "drwatch"
RULES = CHART / "rules"


def require_tool(name: str, how_to_install: str, *candidates: Path) -> str:
    """Path of the program ``name`` (first of ``candidates`` that exists, else from PATH)."""
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed; {how_to_install}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
