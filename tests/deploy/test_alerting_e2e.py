"""End to end: drwatch's alerts travel from a real Prometheus through a real Alertmanager.

drwatch runs as its own process (``python -m app.cli serve``) watching a throwaway Redis and a
backup directory; Prometheus scrapes it every second as ``job="drwatch"`` and evaluates the shipped
rule files unchanged; Alertmanager routes every alert to a webhook receiver in this test, which
records when each notification arrived. How long each alert took from the fault to the receiver,
and from the fix to its resolved notification, is printed (run pytest with ``-s`` to see it) and
recorded as test properties.

The wait is bounded by each rule's own ``for:`` / ``keep_firing_for`` plus a margin, so the test
follows the rules when they change. Each fault is fixed as soon as its alert has reached the
receiver, so the two alerts' waits overlap.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy import REPO, RULES, require_tool
from tests.deploy.promstack import (
    Program,
    WebhookReceiver,
    alert_rule,
    prometheus_alerts,
    prometheus_query,
    seconds,
    start_alertmanager,
    start_prometheus,
    wait_http,
)
from tests.servers import RedisServer, free_port

RULE_FILES = sorted(RULES.glob("*.yaml"))
REDIS_CHECK = "redis"
BACKUP_CHECK = "backups"
BACKUP_RPO = 3600.0
# Slack beyond a rule's for: (to fire) or keep_firing_for (to resolve) for scrape, evaluation,
# Alertmanager's group_wait/group_interval and a busy machine.
FIRE_MARGIN = 90.0
RESOLVE_MARGIN = 180.0
POLL = 0.5
# Series shown when a wait times out.
RELEVANT_SERIES = (
    "drwatch_check_up",
    "drwatch_check_status",
    "drwatch_backup_age_seconds",
    "drwatch_backup_rpo_seconds",
    "drwatch_backup_verified",
    "drwatch_health_status",
)

PLAIN_DUMP = """--
-- PostgreSQL database dump
--

SET client_encoding = 'UTF8';
CREATE TABLE public.orders (id integer NOT NULL, total numeric NOT NULL);
COPY public.orders (id, total) FROM stdin;
1\t9.99
2\t19.50
\\.

--
-- PostgreSQL database dump complete
--
"""


def write_dump(directory: Path, name: str) -> Path:
    """A small, complete plain pg_dump script, renamed into place so it appears whole."""
    path = directory / name
    partial = directory / f".{name}.partial"
    partial.write_text(PLAIN_DUMP)
    partial.rename(path)
    return path


def drwatch_config(redis_url: str, backups: Path) -> dict[str, Any]:
    return {
        "checks": [
            {
                "name": REDIS_CHECK,
                "type": "redis",
                "criticality": "critical",
                "interval": "1s",
                "timeout": "0.5s",
                "fall": 1,
                "rise": 1,
                "params": {"url": redis_url},
            },
            {
                "name": BACKUP_CHECK,
                "type": "backup_files",
                "interval": "1s",
                "timeout": "0.8s",
                "fall": 1,
                "rise": 1,
                "params": {
                    "path": str(backups),
                    "pattern": "*.sql",
                    "rpo": f"{BACKUP_RPO:g}s",
                    "timestamp": "mtime",
                    "verify": True,
                    "settle": "0s",
                    "recheck_delay": "0s",
                },
            },
        ]
    }


def start_drwatch(root: Path, config: dict[str, Any]) -> tuple[Program, str]:
    config_file = root / "drwatch.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    env = {
        **os.environ,
        "DRWATCH_CONFIG": str(config_file),
        "DRWATCH_PORT": str(port),
        "DRWATCH_HOST": "127.0.0.1",
        "DRWATCH_STATE_URL": f"sqlite+aiosqlite:///{root}/state.db",
        "DRWATCH_HEALTH_DETAILS": "always",
        "DRWATCH_LOG_FORMAT": "text",
    }
    program = Program(
        "drwatch",
        [sys.executable, "-m", "app.cli", "serve"],
        root / "drwatch.log",
        env=env,
        cwd=REPO,
    )
    return program, f"http://127.0.0.1:{port}"


@dataclass
class Expectation:
    """An alert the test waits for: firing after the fault, resolved after ``fix``."""

    alertname: str
    labels: dict[str, str]
    fix: Callable[[], None]
    fire_within: float
    resolve_within: float
    rule: dict[str, Any]
    fired_at: float | None = None
    fixed_at: float | None = None
    resolved_at: float | None = None
    firing_alert: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        shown = ",".join(f"{k}={v}" for k, v in self.labels.items())
        return f"{self.alertname}{{{shown}}}"


def rule_timing(alertname: str) -> tuple[dict[str, Any], float, float]:
    rule = alert_rule(RULE_FILES, alertname)
    hold = seconds(rule.get("for", "0s"))
    keep = seconds(rule.get("keep_firing_for", "0s"))
    return rule, hold + FIRE_MARGIN, keep + RESOLVE_MARGIN


@pytest.mark.slow
# The rules hold DrwatchBackupTooOld for 5 minutes before it fires.
@pytest.mark.timeout(900)
def test_stopped_redis_and_a_stale_backup_reach_the_receiver_and_resolve(
    record_property: Callable[[str, object], None],
) -> None:
    """A stopped Redis and a too-old backup alert via Prometheus and Alertmanager, then resolve."""
    prometheus_bin = require_tool(
        "prometheus", "apt-get install prometheus", Path("/usr/bin/prometheus")
    )
    alertmanager_bin = require_tool(
        "prometheus-alertmanager",
        "apt-get install prometheus-alertmanager",
        Path("/usr/bin/prometheus-alertmanager"),
    )
    require_tool("redis-server", "apt-get install redis-server")
    assert RULE_FILES, f"no rule files in {RULES}"

    root = Path(tempfile.mkdtemp(prefix="drwatch-alerting-"))
    programs: list[Program] = []
    redis: RedisServer | None = None
    receiver: WebhookReceiver | None = None
    try:
        receiver = WebhookReceiver()
        redis = RedisServer.create()
        backups = root / "backups"
        backups.mkdir()
        newest = write_dump(backups, "app-1.sql")

        drwatch, drwatch_url = start_drwatch(root, drwatch_config(redis.url, backups))
        programs.append(drwatch)
        wait_http(f"{drwatch_url}/health", drwatch)
        alertmanager = start_alertmanager(alertmanager_bin, root / "alertmanager", receiver.url)
        programs.append(alertmanager.program)
        prometheus = start_prometheus(
            prometheus_bin,
            root / "prometheus",
            job_name="drwatch",
            target=drwatch_url.removeprefix("http://"),
            alertmanager=alertmanager.url.removeprefix("http://"),
            rule_files=RULE_FILES,
        )
        programs.append(prometheus.program)
        started = time.time()

        def situation(since: float) -> str:
            """What every part of the pipeline shows now, for a failure message."""
            parts = []
            try:
                alerts = prometheus_alerts(prometheus.url)
                parts.append(
                    "Prometheus alerts:\n"
                    + (
                        "\n".join(
                            f"  {a['state']} {a['labels'].get('alertname')} "
                            f"{ {k: v for k, v in a['labels'].items() if k != 'alertname'} } "
                            f"active since {a.get('activeAt')}"
                            for a in alerts
                        )
                        or "  (none)"
                    )
                )
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                parts.append(f"Prometheus alerts: unavailable ({exc!r})")
            try:
                health = httpx.get(f"{drwatch_url}/health?verbose", timeout=5.0)
                parts.append(f"drwatch /health?verbose ({health.status_code}):\n{health.text}")
                metrics = httpx.get(f"{drwatch_url}/metrics", timeout=5.0).text
                lines = [ln for ln in metrics.splitlines() if ln.startswith(RELEVANT_SERIES)]
                parts.append("drwatch /metrics:\n  " + "\n  ".join(lines))
            except httpx.HTTPError as exc:
                parts.append(f"drwatch: unavailable ({exc!r})")
            assert receiver is not None
            parts.append(f"Notifications received:\n{receiver.summary(since)}")
            parts.extend(p.describe() for p in programs if not p.alive)
            return "\n".join(parts)

        def wait_for(what: str, done: Callable[[], bool], timeout: float, since: float) -> None:
            deadline = time.monotonic() + timeout
            while not done():
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"{what} did not happen within {timeout:.0f}s.\n{situation(since)}",
                        pytrace=False,
                    )
                time.sleep(POLL)

        # The pipeline works: the always-firing Watchdog reaches the receiver.
        wait_for(
            "the Watchdog alert reaching the receiver",
            lambda: (
                receiver is not None and receiver.first("Watchdog", "firing", started) is not None
            ),
            90.0,
            started,
        )
        watchdog = receiver.first("Watchdog", "firing", started)
        assert watchdog is not None
        watchdog_seconds = watchdog.arrived - started

        # Prometheus sees both checks healthy under the labels the rules select on, and neither
        # alert is pending from drwatch's start.
        def healthy_in_prometheus() -> bool:
            up = prometheus_query(
                prometheus.url,
                f'drwatch_check_up{{job="drwatch",check="{REDIS_CHECK}",criticality="critical"}}'
                " == 1",
            )
            fresh = prometheus_query(
                prometheus.url,
                f'drwatch_backup_age_seconds{{job="drwatch",source="{BACKUP_CHECK}"}}'
                f' < drwatch_backup_rpo_seconds{{source="{BACKUP_CHECK}"}}',
            )
            active = {a["labels"]["alertname"] for a in prometheus_alerts(prometheus.url)}
            return bool(up and fresh) and not active & {
                "DrwatchCriticalCheckFailing",
                "DrwatchBackupTooOld",
            }

        wait_for("Prometheus seeing both checks healthy", healthy_in_prometheus, 60.0, started)

        def restart_redis() -> None:
            assert redis is not None
            redis.start()

        def fresh_backup() -> None:
            write_dump(backups, "app-2.sql")

        critical_rule, critical_fire, critical_resolve = rule_timing("DrwatchCriticalCheckFailing")
        backup_rule, backup_fire, backup_resolve = rule_timing("DrwatchBackupTooOld")
        expectations = [
            Expectation(
                "DrwatchCriticalCheckFailing",
                {"check": REDIS_CHECK, "job": "drwatch"},
                restart_redis,
                critical_fire,
                critical_resolve,
                critical_rule,
            ),
            Expectation(
                "DrwatchBackupTooOld",
                {"source": BACKUP_CHECK, "job": "drwatch"},
                fresh_backup,
                backup_fire,
                backup_resolve,
                backup_rule,
            ),
        ]

        # Both faults at once: Redis goes away and the newest backup becomes twice the RPO old.
        fault = time.time()
        redis.stop()
        old = fault - 2 * BACKUP_RPO
        os.utime(newest, (old, old))

        # Each fault is fixed as soon as its alert has reached the receiver.
        while not all(e.resolved_at is not None for e in expectations):
            now = time.time()
            for e in expectations:
                if e.fired_at is None:
                    firing = receiver.first(e.alertname, "firing", fault, **e.labels)
                    if firing is not None:
                        e.fired_at = firing.arrived
                        e.firing_alert = next(
                            a
                            for a in firing.alerts
                            if a["labels"]["alertname"] == e.alertname
                            and all(a["labels"].get(k) == v for k, v in e.labels.items())
                        )
                        e.fix()
                        e.fixed_at = time.time()
                    elif now - fault > e.fire_within:
                        pytest.fail(
                            f"{e.title} did not reach the receiver as firing within "
                            f"{e.fire_within:.0f}s of the fault (rule for: "
                            f"{e.rule.get('for', '0s')}).\n{situation(fault)}",
                            pytrace=False,
                        )
                elif e.resolved_at is None:
                    assert e.fixed_at is not None
                    resolved = receiver.first(e.alertname, "resolved", e.fixed_at, **e.labels)
                    if resolved is not None:
                        e.resolved_at = resolved.arrived
                    elif now - e.fixed_at > e.resolve_within:
                        pytest.fail(
                            f"{e.title} was not resolved at the receiver within "
                            f"{e.resolve_within:.0f}s of the fix (rule keep_firing_for: "
                            f"{e.rule.get('keep_firing_for', '0s')}).\n{situation(e.fixed_at)}",
                            pytrace=False,
                        )
            time.sleep(POLL)

        lines = [f"Watchdog reached the receiver {watchdog_seconds:.1f}s after Prometheus started"]
        record_property("watchdog_seconds", round(watchdog_seconds, 1))
        for e in expectations:
            assert e.fired_at is not None and e.fixed_at is not None and e.resolved_at is not None
            to_fire = e.fired_at - fault
            to_resolve = e.resolved_at - e.fixed_at
            lines.append(
                f"{e.title}: fault -> firing at the receiver {to_fire:.1f}s "
                f"(for: {e.rule.get('for', '0s')}); fix -> resolved {to_resolve:.1f}s "
                f"(keep_firing_for: {e.rule.get('keep_firing_for', '0s')})"
            )
            record_property(f"{e.alertname}_fire_seconds", round(to_fire, 1))
            record_property(f"{e.alertname}_resolve_seconds", round(to_resolve, 1))
        lines.append(f"Every notification (seconds from the fault):\n{receiver.summary(fault)}")
        print("\n" + "\n".join(lines))

        # What on-call reads names the failing dependency.
        critical, backup = (e.firing_alert for e in expectations)
        assert critical["labels"]["severity"] == "critical"
        assert REDIS_CHECK in critical["annotations"]["summary"]
        assert critical["labels"]["type"] == "redis"
        assert backup["labels"]["severity"] == "critical"
        assert BACKUP_CHECK in backup["annotations"]["summary"]
        assert "old" in backup["annotations"]["description"]
    finally:
        for program in reversed(programs):
            program.stop()
        if redis is not None:
            redis.destroy()
        if receiver is not None:
            receiver.close()
        shutil.rmtree(root, ignore_errors=True)
