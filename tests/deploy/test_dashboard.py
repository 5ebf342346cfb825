"""The Grafana dashboard in helm/drwatch/dashboards: it reads only what drwatch exports and the
rules it ships, and the chart ships it as a ConfigMap for Grafana's sidecar when asked."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.deploy import CHART, RULES
from tests.deploy.test_chart import helm, template  # noqa: F401 - the helm fixture
from tests.test_metrics_families import FAMILIES

DASHBOARD = CHART / "dashboards" / "drwatch.json"
# A metric or recording-rule name inside a PromQL expression.
NAME = re.compile(r"\b(drwatch[_:][A-Za-z0-9_:]+)")
# Counters are exported as <family>_total; summaries and histograms add their own suffixes.
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _recorded() -> set[str]:
    names = set()
    for path in RULES.glob("*.yaml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


def _family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in FAMILIES:
            return name.removesuffix(suffix)
    return name


def test_every_panel_reads_only_metrics_drwatch_exports_or_rules_it_ships() -> None:
    """A renamed metric or recording rule fails here instead of leaving an empty panel."""
    known = FAMILIES | _recorded()
    used = {_family(n) for expr in _expressions(_dashboard()) for n in NAME.findall(expr)}
    assert used, "the dashboard queries nothing"
    assert sorted(used - known) == []


@pytest.mark.parametrize(
    ("metric", "why"),
    [
        ("drwatch_health_status", "the verdict"),
        ("drwatch_check_status", "checks by state"),
        ("drwatch_backup_age_seconds", "backup age"),
        ("drwatch_backup_rpo_seconds", "against the RPO"),
        ("drwatch_restore_drill_duration_seconds", "drill duration"),
        ("drwatch_restore_drill_rto_seconds", "against the RTO"),
        ("drwatch:critical_check_error:ratio_rate1h", "burn rate"),
        ("drwatch_slo_error_budget_remaining_ratio", "budget left"),
        ("drwatch_incidents_open", "incidents open"),
    ],
)
def test_the_dashboard_shows(metric: str, why: str) -> None:
    """Each thing a person looks for on the dashboard has a panel that reads it."""
    assert any(metric in expr for expr in _expressions(_dashboard())), why


def test_panels_have_unique_ids_and_titles() -> None:
    """Grafana keys panels by id; duplicates silently hide one of them."""
    panels = _dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert len({p["title"] for p in panels}) == len(panels)


def test_the_chart_ships_the_dashboard_only_when_enabled(helm: str) -> None:  # noqa: F811
    """Off by default; on, one ConfigMap labelled for the sidecar holding the file verbatim."""
    default = template(helm)
    assert not [
        m for m in default if m["kind"] == "ConfigMap" and "dashboard" in m["metadata"]["name"]
    ]
    enabled = template(helm, "--set", "dashboards.enabled=true")
    (config_map,) = [
        m
        for m in enabled
        if m["kind"] == "ConfigMap" and m["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["drwatch.json"]) == _dashboard()
