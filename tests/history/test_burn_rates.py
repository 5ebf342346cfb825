"""/api/slo's burn rates and the shipped Prometheus rules, held to one synthetic history.

The verdict history goes through the repository into a state store and out as /api/slo's
``burn_rates``; the same history, sampled the way Prometheus scrapes ``drwatch_check_up``,
goes through the recording rules of helm/drwatch/rules/drwatch-slo.yaml in ``promtool test
rules``. The two must agree within what sampling can change: two evaluation steps of each window.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import yaml

from app.history.cache import compute
from app.history.slo import BURN_WINDOWS, SloSpec
from app.store.db import upgrade
from app.store.repository import CoverageSpan, Store, VerdictTransition
from tests.deploy import RULES, require_tool
from tests.history.synthetic import DAY, NOW, at

HOUR = 3600.0
START = NOW - 3 * DAY - HOUR
# Spans of verdict fail: one only the three-day window sees, one in the 6 h window, one in the
# last hour, and one still going on in the last five minutes.
OUTAGES = [
    (NOW - 2 * DAY, NOW - 2 * DAY + 2 * HOUR),
    (NOW - 5 * HOUR, NOW - 5 * HOUR + 600),
    (NOW - 2400, NOW - 1800),
    (NOW - 180, NOW),
]
RULE = {"5m": "ratio_rate5m", "1h": "ratio_rate1h", "6h": "ratio_rate6h", "3d": "ratio_rate3d"}


async def _burn_rates(tmp_path: Path) -> dict[str, float]:
    url = f"sqlite+aiosqlite:///{tmp_path}/state.db"
    await asyncio.to_thread(upgrade, url)
    store = Store.from_url(url, "r1")
    verdicts = [VerdictTransition(None, "pass", at(START))]
    for start, end in OUTAGES:
        verdicts.append(VerdictTransition("pass", "fail", at(start)))
        if end < NOW:
            verdicts.append(VerdictTransition("fail", "pass", at(end)))
    try:
        await store.record_verdict_transitions(verdicts)
        await store.extend_coverage(CoverageSpan("run", "r1", at(START), at(NOW), True))
        rows = await store.history(at(NOW - 90 * DAY))
    finally:
        await store.dispose()
    slo = compute(rows, "r1", SloSpec(), lambda _name: "critical", NOW)["self"].slo
    return dict(slo["burn_rates"])


def _series(start: float, step: float) -> str:
    """drwatch_check_up of the critical check every ``step`` seconds from ``start`` to NOW, in
    promtool's ``value x repeats`` notation."""
    values = []
    moment = start
    while moment <= NOW:
        failing = any(a <= moment < b for a, b in OUTAGES) or moment == NOW
        values.append(0 if failing else 1)
        moment += step
    runs: list[list[int]] = []
    for value in values:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return " ".join(f"{value}x{count - 1}" for value, count in runs)


def _promtool_file(
    tmp_path: Path, name: str, step: float, start: float, ours: dict[str, float]
) -> Path:
    labels = 'check="database",type="postgres",criticality="critical",job="drwatch",instance="a"'
    tests = []
    for window, burn in ours.items():
        tolerance = 2 * step / BURN_WINDOWS[window] / 0.001
        tests.append(
            {
                "expr": f"abs(drwatch:critical_check_error:{RULE[window]} / 0.001 - {burn})"
                f" < bool {tolerance}",
                "eval_time": f"{int(NOW - start)}s",
                "exp_samples": [{"labels": '{instance="a",job="drwatch"}', "value": 1}],
            }
        )
    document = {
        "rule_files": [str(RULES / "drwatch-slo.yaml")],
        "evaluation_interval": f"{int(step)}s",
        "tests": [
            {
                "name": f"burn rates agree with /api/slo ({name})",
                "interval": f"{int(step)}s",
                "input_series": [
                    {"series": f"drwatch_check_up{{{labels}}}", "values": _series(start, step)}
                ],
                "promql_expr_test": tests,
            }
        ],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


async def test_api_burn_rates_agree_with_the_prometheus_rules(tmp_path: Path) -> None:
    """5m, 1h and 6h sampled every 15 s, 3d every 5 min: the rules and /api/slo agree."""
    promtool = require_tool("promtool", "apt-get install prometheus")
    ours = await _burn_rates(tmp_path)
    assert ours == {
        "5m": 600.0,
        "1h": round((10 + 3) / 60 / 0.001, 6),
        "6h": round((10 + 10 + 3) / 360 / 0.001, 6),
        "3d": round((120 + 23) / 4320 / 0.001, 6),
    }
    short = {w: b for w, b in ours.items() if w != "3d"}
    files = [
        # Seven hours are enough for the short windows and keep the 3d rule under promtool's
        # per-query sample limit at this step.
        _promtool_file(tmp_path, "short", 15.0, NOW - 7 * HOUR, short),
        _promtool_file(tmp_path, "long", 300.0, START, {"3d": ours["3d"]}),
    ]
    result = await asyncio.to_thread(
        subprocess.run,
        [promtool, "test", "rules", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
