"""Overload never looks like an outage: a saturated drwatch skips runs, it does not fail checks.

A real drwatch (lifespan, scheduler, probe engine, HTTP engine) runs with very few run slots
(``DRWATCH_MAX_IN_FLIGHT``) against a healthy local HTTP server that takes a little time per
request, so far more check runs fall due than the engine can start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.base import Fault
from tests.fakes.endpoint import Endpoint
from tests.harness import RunningApp, running_app, settings_for

# Each request to the target takes this long; with 2 run slots the engine starts at most about
# 2 / TARGET_LATENCY runs per second.
TARGET_LATENCY = 0.02


@pytest.fixture(scope="module")
def target() -> Iterator[Endpoint]:
    server = Endpoint()
    server.inject(Fault(delay=TARGET_LATENCY))
    yield server
    server.stop()


def _http(name: str, url: str, criticality: str, interval: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "http",
        "criticality": criticality,
        "interval": interval,
        "timeout": "0.5s",
        "fall": 1,
        "params": {"url": url},
    }


def _failed_runs(running: RunningApp) -> dict[str, int]:
    checks = running.runtime.monitor.snapshot.checks
    return {name: state.runs["fail"] for name, state in checks.items() if state.runs["fail"]}


async def test_a_saturated_drwatch_skips_runs_and_never_fails_a_healthy_check(
    tmp_path: Path, target: Endpoint
) -> None:
    """With 2 run slots and 200 checks due each second against a healthy target, no run fails:
    runs are skipped and counted, /health stays 200, and the self-check ``drwatch`` warns."""
    url = f"{target.url}/health"
    checks = [_http("app", url, "critical", "1s")]
    checks += [_http(f"vendor-{i}", url, "degraded", "1s") for i in range(200)]
    settings = settings_for(tmp_path, max_in_flight=2, health_details="always")
    async with running_app({"checks": checks}, settings) as running:
        scheduler = running.runtime.scheduler
        await running.wait_until(lambda: sum(scheduler.overruns.values()) >= 200, 30)
        await running.wait_until(
            lambda: running.runtime.monitor.snapshot.self_check.status.value == "warn", 10
        )
        await asyncio.sleep(3)  # a few more intervals of saturation

        assert _failed_runs(running) == {}
        health = await running.client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "warn"
        own = health.json()["checks"]["drwatch"][0]
        assert own["status"] == "warn"
        assert "fewer checks" in own["output"] and "more replicas" in own["output"]
        one = await running.client.get("/health/drwatch")
        assert (one.status_code, one.json()["status"]) == (200, "warn")
        assert (await running.client.get("/health/app")).status_code == 200

        metrics = (await running.client.get("/metrics")).text
        samples = {
            sample.name: sample.value
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
            if not sample.labels
        }
        assert samples["drwatch_engine_saturation_ratio"] > 1.0


async def test_a_critical_check_keeps_fresh_results_among_2000_info_checks(
    tmp_path: Path, target: Endpoint
) -> None:
    """Under saturation the critical check is started ahead of 2,000 info checks: none of its
    runs is skipped, it never turns stale, and it never fails."""
    url = f"{target.url}/health"
    checks = [_http("primary", url, "critical", "1s")]
    checks += [_http(f"batch-{i}", url, "info", "5s") for i in range(2000)]
    settings = settings_for(tmp_path, max_in_flight=2)
    async with running_app({"checks": checks}, settings) as running:
        monitor = running.runtime.monitor
        scheduler = running.runtime.scheduler
        await running.wait_until(lambda: monitor.state("primary").last_result is not None, 10)
        await running.wait_until(lambda: sum(scheduler.overruns.values()) >= 500, 60)
        runs_before = monitor.state("primary").runs["pass"]
        stale_seen = False
        for _ in range(50):  # 5 s of saturation, looked at 10 times a second
            stale_seen |= monitor.snapshot.checks["primary"].stale
            await asyncio.sleep(0.1)

        primary = monitor.snapshot.checks["primary"]
        assert not stale_seen
        assert scheduler.overruns["primary"] == 0
        assert primary.runs["fail"] == 0
        assert primary.runs["pass"] > runs_before
        assert monitor.snapshot.status.value == "warn"  # saturated, and saying so
