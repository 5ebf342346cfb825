"""/metrics: the names and values from the snapshot, and a clean bill from promtool."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.checks.base import Result, Status
from app.config import parse_config
from app.metrics import Exposition, MetricSources, build_registry
from app.monitor import Monitor
from tests.harness import running_app, settings_for
from tests.servers import PostgresCluster, refused_port


def _registry_for(monitor: Monitor):  # type: ignore[no-untyped-def]
    return build_registry(MetricSources(snapshot=lambda: monitor.snapshot, version="1.2.3"))


def test_it_exports_check_states_from_the_snapshot() -> None:
    """check_up, check_status, runs, duration and health_status follow recorded results."""
    config = parse_config(
        {
            "checks": [
                {"name": "db", "type": "postgres", "params": {"dsn": "postgresql://h/d"}},
                {
                    "name": "replica",
                    "type": "postgres",
                    "criticality": "degraded",
                    "params": {"dsn": "postgresql://h/d", "max_replication_lag": "15m"},
                },
            ]
        }
    )
    monitor = Monitor(config.checks)
    registry = _registry_for(monitor)
    assert registry.get_sample_value("drwatch_health_status") == 0.0  # nothing known yet
    monitor.record("db", Result(Status.PASS, "ok", duration=0.25))
    monitor.record(
        "replica", Result(Status.FAIL, "lagging", details={"replication_lag_seconds": 1200.0})
    )
    value = registry.get_sample_value
    assert (
        value("drwatch_check_up", {"check": "db", "type": "postgres", "criticality": "critical"})
        == 1.0
    )
    assert (
        value(
            "drwatch_check_up", {"check": "replica", "type": "postgres", "criticality": "degraded"}
        )
        == 0.0
    )
    assert value("drwatch_check_status", {"check": "replica", "status": "fail"}) == 1.0
    assert value("drwatch_check_status", {"check": "replica", "status": "pass"}) == 0.0
    assert value("drwatch_check_runs_total", {"check": "db", "result": "pass"}) == 1.0
    assert value("drwatch_check_duration_seconds", {"check": "db"}) == 0.25
    assert value("drwatch_replication_lag_seconds", {"check": "replica"}) == 1200.0
    assert value("drwatch_replication_lag_max_seconds", {"check": "replica"}) == 900.0
    assert value("drwatch_health_status") == 1.0  # degraded failure -> warn
    assert value("drwatch_build_info", {"version": "1.2.3"}) == 1.0
    last_run = value("drwatch_check_last_run_timestamp_seconds", {"check": "db"})
    assert last_run is not None and abs(last_run - time.time()) < 60


async def test_metrics_endpoint_passes_promtool(pg: PostgresCluster, tmp_path: Path) -> None:
    """`promtool check metrics` finds nothing to complain about in a real scrape."""
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing; .ci/run installs the prometheus package")
        pytest.skip("promtool is not installed (Debian package prometheus)")
    config = {
        "checks": [
            {"name": "db", "type": "postgres", "interval": "2s", "params": {"dsn": pg.dsn}},
            {
                "name": "down",
                "type": "postgres",
                "criticality": "degraded",
                "interval": "2s",
                "params": {"dsn": f"postgresql://x@127.0.0.1:{refused_port()}/x"},
            },
        ]
    }
    async with running_app(config, settings_for(tmp_path)) as running:
        await running.wait_ready()
        response = await running.client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert {
        "drwatch_check_up",
        "drwatch_check_status",
        "drwatch_check_duration_seconds",
        "drwatch_check_last_run_timestamp_seconds",
        "drwatch_check_runs",
        "drwatch_health_status",
        "drwatch_scheduler_lag_seconds",
        "drwatch_build_info",
        "drwatch_store_up",
    } <= families
    result = subprocess.run(
        [promtool, "check", "metrics"], input=response.text, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _exposition_for(monitor: Monitor, clock: _Clock) -> Exposition:
    sources = MetricSources(snapshot=lambda: monitor.snapshot, version="1.2.3")
    return Exposition(build_registry(sources), sources, clock=clock)


def _one_check_monitor() -> Monitor:
    config = parse_config(
        {"checks": [{"name": "db", "type": "postgres", "params": {"dsn": "postgresql://h/d"}}]}
    )
    return Monitor(config.checks)


def test_an_unchanged_snapshot_is_served_from_the_bytes_rendered_once() -> None:
    """Scrapes of an unchanged snapshot get the same bytes; a new result is in the next render."""
    monitor, clock = _one_check_monitor(), _Clock()
    exposition = _exposition_for(monitor, clock)
    first = exposition.body()
    clock.now += 1.0
    assert exposition.body() is first
    monitor.record("db", Result(Status.PASS, "ok"))
    clock.now += 1.0
    changed = exposition.body()
    assert changed is not first
    assert b'drwatch_check_runs_total{check="db",result="pass"} 1.0' in changed


def test_renders_are_coalesced_under_a_storm_of_results() -> None:
    """Results arriving within 250 ms of a render wait for the next render after that."""
    monitor, clock = _one_check_monitor(), _Clock()
    exposition = _exposition_for(monitor, clock)
    before = exposition.body()
    monitor.record("db", Result(Status.PASS, "ok"))
    clock.now += 0.1
    assert exposition.body() is before
    clock.now += 0.2
    assert b'result="pass"} 1.0' in exposition.body()


def test_values_measured_at_render_time_are_refreshed_every_few_seconds() -> None:
    """Even with nothing new, the exposition is rendered again after 5 s (backup age moves)."""
    monitor, clock = _one_check_monitor(), _Clock()
    exposition = _exposition_for(monitor, clock)
    first = exposition.body()
    clock.now += 5.0
    assert exposition.body() is not first


async def test_metrics_are_gzip_compressed_when_the_scraper_asks(tmp_path: Path) -> None:
    """Accept-Encoding: gzip gets a gzip body that decompresses to the same exposition."""
    config = {"checks": [{"name": "db", "type": "postgres", "params": {"dsn": "postgresql://h/d"}}]}
    async with running_app(config, settings_for(tmp_path), run_scheduler=False) as running:
        plain = await running.client.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        raw = running.runtime.exposition.body(gzipped=True)
        assert gzip.decompress(raw) == plain.content
        packed = await running.client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.content == plain.content  # httpx decompressed it
        checks = await running.client.get("/api/checks", headers={"Accept-Encoding": "gzip"})
        assert checks.json()["checks"][0]["name"] == "db"
