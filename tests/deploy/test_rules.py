"""The alert and recording rules in helm/drwatch/rules, and the Alertmanager example.

promtool checks the rule files and runs their unit tests (helm/drwatch/rules/tests); these tests
also hold every alert to the shape on-call needs (severity, summary, a description, a runbook link
to an entry that exists in docs/runbook.md) and every alert's unit tests to three cases: it fires
when it should, it does not fire before its ``for:``, and it stays quiet when it should.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import CHART, REPO, RULES, require_tool

RULE_FILES = sorted(RULES.glob("*.yaml"))
UNIT_TEST_FILES = sorted((RULES / "tests").glob("*.yaml"))
ALERTMANAGER_EXAMPLE = CHART / "alertmanager-example.yaml"
RUNBOOK_BASE = "https://github.com/drwatch/drwatch/blob/main/docs/runbook.md#"
SEVERITIES = {"critical", "warning", "none"}


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool", "apt-get install prometheus")


@pytest.fixture(scope="module")
def amtool() -> str:
    return require_tool("amtool", "apt-get install prometheus-alertmanager")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False
    )


def alert_rules() -> list[dict[str, Any]]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(rule for rule in group["rules"] if "alert" in rule)
    return rules


def alert_names() -> list[str]:
    return sorted({rule["alert"] for rule in alert_rules()})


def seconds(duration: str) -> float:
    """A Prometheus duration ("1h30m", "15s", "0m") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(int(n) * units[u] for n, u in parts)


def unit_test_groups() -> list[dict[str, Any]]:
    groups = []
    for path in UNIT_TEST_FILES:
        groups.extend(yaml.safe_load(path.read_text())["tests"])
    return groups


def test_the_rule_files_pass_promtool_check(promtool: str) -> None:
    """`promtool check rules` accepts every rule file (including keep_firing_for)."""
    assert RULE_FILES, "no rule files found"
    result = run(promtool, "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_load_from_a_prometheus_configuration(promtool: str, tmp_path: Path) -> None:
    """A prometheus.yml listing the rule files under rule_files passes `promtool check config`."""
    config = {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": [str(path) for path in RULE_FILES],
        "scrape_configs": [
            {"job_name": "drwatch", "static_configs": [{"targets": ["127.0.0.1:8080"]}]}
        ],
    }
    prometheus_yml = tmp_path / "prometheus.yml"
    prometheus_yml.write_text(yaml.safe_dump(config))
    result = run(promtool, "check", "config", prometheus_yml)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in RULE_FILES:
        assert f"Checking {path}" in result.stdout + result.stderr


def test_every_alert_passes_its_promtool_unit_tests(promtool: str) -> None:
    """`promtool test rules` passes every unit test file."""
    assert UNIT_TEST_FILES, "no promtool unit tests found"
    result = run(promtool, "test", "rules", *UNIT_TEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TEST_FILES), result.stdout


def test_promtool_unit_tests_fail_when_an_alert_threshold_changes(
    promtool: str, tmp_path: Path
) -> None:
    """The unit tests notice a changed rule: a DrwatchBackupTooOld comparing with 2 x RPO fails."""
    rules_dir = tmp_path / "rules"
    (rules_dir / "tests").mkdir(parents=True)
    for path in RULE_FILES:
        text = path.read_text()
        changed = text.replace(
            "expr: drwatch_backup_age_seconds > drwatch_backup_rpo_seconds",
            "expr: drwatch_backup_age_seconds > 2 * drwatch_backup_rpo_seconds",
        )
        (rules_dir / path.name).write_text(changed)
    assert "2 * drwatch_backup_rpo_seconds" in (rules_dir / "drwatch-alerts.yaml").read_text()
    (rules_dir / "tests" / "backups.yaml").write_text(
        (RULES / "tests" / "backups.yaml").read_text()
    )
    result = run(promtool, "test", "rules", rules_dir / "tests" / "backups.yaml")
    assert result.returncode != 0
    assert "DrwatchBackupTooOld" in result.stdout + result.stderr


def test_the_alerts_are_the_ones_drwatch_documents() -> None:
    """The rule files define exactly the documented alerts."""
    assert alert_names() == sorted(
        [
            "DrwatchCriticalCheckFailing",
            "DrwatchDegradedCheckFailing",
            "DrwatchBackupTooOld",
            "DrwatchBackupMetricsAbsent",
            "DrwatchBackupNotVerified",
            "DrwatchWalArchivingStalled",
            "DrwatchReplicationLagHigh",
            "DrwatchTlsCertificateExpiring",
            "DrwatchRestoreDrillFailed",
            "DrwatchRestoreDrillOverdue",
            "DrwatchRestoreDrillSlowerThanRto",
            "DrwatchStandbyNotReady",
            "DrwatchDown",
            "DrwatchStale",
            "DrwatchEngineSaturated",
            "DrwatchSloBurnRate",
            "Watchdog",
        ]
    )


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: f"{r['alert']}-{r['labels']}")
def test_every_alert_tells_on_call_what_to_do(rule: dict[str, Any]) -> None:
    """Each alert has a severity, a summary, a description and a link to its runbook entry."""
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["summary"].strip()
    assert "First" in annotations["description"], "the description must say what to do first"
    assert annotations["runbook_url"] == RUNBOOK_BASE + rule["alert"].lower()


def test_every_runbook_link_has_an_entry_in_the_runbook() -> None:
    """Every alert's runbook anchor is a heading in docs/runbook.md."""
    section = (REPO / "docs" / "runbook.md").read_text()
    headings = {
        re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#{2,6} (.+)$", section, flags=re.MULTILINE)
    }
    missing = [name for name in alert_names() if name.lower() not in headings]
    assert not missing, f"docs/runbook.md entries missing for {missing}"


def test_keep_firing_for_is_set_where_a_flapping_condition_would_refire() -> None:
    """Alerts on conditions that oscillate hold for a while instead of resolving and re-paging."""
    holding = {rule["alert"] for rule in alert_rules() if "keep_firing_for" in rule}
    assert {
        "DrwatchCriticalCheckFailing",
        "DrwatchDegradedCheckFailing",
        "DrwatchWalArchivingStalled",
        "DrwatchReplicationLagHigh",
        "DrwatchDown",
    } <= holding


def _cases(alert: str) -> list[tuple[str, list[tuple[float, bool]]]]:
    """(test name, [(eval seconds, fires?)]) for each unit test group that evaluates ``alert``."""
    cases = []
    for group in unit_test_groups():
        evaluations = [
            (seconds(t["eval_time"]), bool(t["exp_alerts"]))
            for t in group.get("alert_rule_test", [])
            if t["alertname"] == alert
        ]
        if evaluations:
            cases.append((group["name"], sorted(evaluations)))
    return cases


@pytest.mark.parametrize("alert", alert_names())
def test_every_alert_has_unit_tests_for_firing_pending_and_quiet(alert: str) -> None:
    """Each alert fires in one test, stays quiet in another, and is shown pending before for:."""
    cases = _cases(alert)
    assert any(fires for _, evals in cases for _, fires in evals), f"{alert} never fires"
    if alert == "Watchdog":
        return  # fires always, by design: no for:, nothing that may silence it
    assert any(not any(fires for _, fires in evals) for _, evals in cases), (
        f"{alert} has no test in which it stays quiet"
    )
    shortest_for = min(seconds(r.get("for", "0s")) for r in alert_rules() if r["alert"] == alert)
    assert shortest_for > 0, f"{alert} has no for:"
    # Quiet at some time t, firing at some later t' with t' - t < for: the alert was pending.
    assert any(
        0 < fire_at - quiet_at < shortest_for + 1e-9
        for _, evals in cases
        for quiet_at, quiet_fires in evals
        if not quiet_fires
        for fire_at, fires in evals
        if fires
    ), f"{alert} has no test showing it pending before its for: ({shortest_for:g}s)"


def test_the_alertmanager_example_passes_amtool(amtool: str) -> None:
    """`amtool check-config` accepts helm/drwatch/alertmanager-example.yaml."""
    result = run(amtool, "check-config", ALERTMANAGER_EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["alertname=DrwatchBackupTooOld", "severity=critical"], "pager,slack-warnings"),
        (["alertname=DrwatchDegradedCheckFailing", "severity=warning"], "slack-and-email"),
        (["alertname=Watchdog", "severity=none"], "deadmans-switch"),
    ],
)
def test_the_alertmanager_example_routes_by_severity(
    amtool: str, labels: list[str], receivers: str
) -> None:
    """Critical alerts page, warnings go to Slack and e-mail, the Watchdog to a heartbeat."""
    result = run(
        amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_EXAMPLE}", *labels
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers
