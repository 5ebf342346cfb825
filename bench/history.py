"""History answers over 90 days of 50 checks: /api/slo, /api/incidents vs /health, and the CPU
of the background refresh.

    .venv/bin/python bench/history.py [--duration 10] [--connections 10] [--seed 7]

Builds, in a throwaway PostgreSQL state store, 90 days of history of one replica with 50 checks
at a 30 s interval the way a running drwatch makes it: results fed through the real Monitor
(rise/fall damping, the verdict, recovery points), failure episodes at random (a few per check
per week, lengths from 30 s to 2 h, plus short blips that flap damping swallows), a restart every
week (coverage spans with a gap), a daily backup. Then starts `drwatch serve` on that store as
the same replica and measures, with wrk, /api/slo, /api/incidents and /health (the baseline) in
the same run; and, in this process, the CPU time of one history refresh, times four refreshes a
minute. Budgets: <= 20 ms per request (p99), refresh <= 1 s of CPU per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.checks.base import Result, Status  # noqa: E402
from app.config import parse_config  # noqa: E402
from app.history.cache import REFRESH_INTERVAL, HistoryCache  # noqa: E402
from app.history.slo import SloSpec  # noqa: E402
from app.monitor import Monitor  # noqa: E402
from app.store.db import upgrade  # noqa: E402
from app.store.repository import (  # noqa: E402
    CoverageSpan,
    RecoveryPoint,
    Store,
    Transition,
    VerdictTransition,
)
from bench.health import wrk  # noqa: E402
from tests.servers import PostgresCluster, free_port, wait_for_port  # noqa: E402

SERVICE_ID = "bench-replica"
CHECKS = 50
INTERVAL = 30.0
DAYS = 90
DAY = 86400.0


History = tuple[list[Transition], list[VerdictTransition], list[RecoveryPoint], list[CoverageSpan]]


def at(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def document(port: int, backups: Path) -> dict[str, object]:
    """50 checks (10 critical) probing this drwatch's own liveness, and a backup source."""
    checks: list[dict[str, object]] = [
        {
            "name": f"check-{i:02d}",
            "type": "http",
            "criticality": "critical" if i < 10 else "degraded",
            "interval": f"{INTERVAL:g}s",
            "params": {"url": f"http://127.0.0.1:{port}/health/live"},
        }
        for i in range(CHECKS - 1)
    ]
    checks.append(
        {
            "name": "dumps",
            "type": "backup_files",
            "criticality": "info",
            "interval": "5m",
            "params": {"path": str(backups), "pattern": "*.dump", "rpo": "24h"},
        }
    )
    return {"checks": checks}


def synthetic_history(config: dict[str, object], now: float, rng: random.Random) -> History:
    checks = parse_config(config).checks
    names = [c.name for c in checks if c.name != "dumps"]
    results: list[tuple[float, str, Status, dict[str, object]]] = []
    start = now - DAYS * DAY
    for name in names:
        moment = start + rng.uniform(0, DAY)
        while moment < now:
            moment += rng.expovariate(1 / (2 * DAY))  # an episode every two days on average
            if rng.random() < 0.5:  # a blip: one or two failing runs, damped by fall 3
                runs = rng.choice((1, 2))
            else:
                runs = int(rng.choice((1, 2, 5, 20, 120, 240)) * 60 / INTERVAL) + 3
            for i in range(runs):
                results.append((moment + i * INTERVAL, name, Status.FAIL, {}))
            moment += runs * INTERVAL
            for i in range(2):
                results.append((moment + i * INTERVAL, name, Status.PASS, {}))
    for day in range(DAYS):
        taken = start + day * DAY + 3 * 3600
        details = {
            "last_backup_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(taken)),
            "size_bytes": 10_000_000 + day,
            "verified": True,
            "location": f"/backups/{day}.dump",
        }
        results.append((taken + 600, "dumps", Status.PASS, details))
    results.sort(key=lambda r: r[0])

    transitions: list[Transition] = []
    verdicts: list[VerdictTransition] = []
    points: list[RecoveryPoint] = []
    spans: list[CoverageSpan] = []
    # A restart every week: each run of drwatch is a new Monitor and a new coverage span.
    runs = [(start + w * 7 * DAY, min(now, start + (w + 1) * 7 * DAY - 120)) for w in range(13)]
    index = 0
    for run_start, run_end in runs:
        monitor = Monitor(
            checks,
            service_id=SERVICE_ID,
            on_transition=transitions.append,
            on_verdict=verdicts.append,
            on_recovery_point=points.append,
        )
        for check in checks:
            monitor.record(check.name, Result(Status.PASS, "ok", time=at(run_start)))
        while index < len(results) and results[index][0] < run_end:
            moment, name, status, details = results[index]
            index += 1
            if moment >= run_start:
                output = f"{name}: connection refused" if status is Status.FAIL else "ok"
                monitor.record(name, Result(status, output, time=at(moment), details=details))
        spans.append(CoverageSpan(uuid.uuid4().hex, SERVICE_ID, at(run_start), at(run_end), True))
    return transitions, verdicts, points, spans


async def fill(url: str, history: History) -> None:
    transitions, verdicts, points, spans = history
    store = Store.from_url(url, SERVICE_ID)
    try:
        for offset in range(0, len(transitions), 5000):
            await store.record_transitions(transitions[offset : offset + 5000])
        await store.record_verdict_transitions(verdicts)
        for point in points:
            await store.record_recovery_point(point)
        for span in spans:
            await store.extend_coverage(span)
    finally:
        await store.dispose()


async def refresh_cpu(url: str, config: dict[str, object], rounds: int = 5) -> tuple[float, int]:
    """Median CPU seconds of one refresh (store read included), and incidents in the answer."""
    parsed = parse_config(config)
    store = Store.from_url(url, SERVICE_ID)
    criticality = {c.name: c.criticality for c in parsed.checks}
    cache = HistoryCache(store, SloSpec(), criticality=criticality.get)
    samples = []
    try:
        for _ in range(rounds):
            cpu = time.process_time()
            assert await cache.refresh()
            samples.append(time.process_time() - cpu)
    finally:
        await store.dispose()
    return sorted(samples)[len(samples) // 2], len(cache.view("self").incidents)


async def in_process_latency(
    url: str, config: dict[str, object], requests: int = 2000
) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of each path answered by the app in this process (httpx's ASGI
    transport, no network, one request at a time): the app's own cost, free of the machine's
    noise that wrk's figures carry."""
    import httpx

    from app.main import create_app
    from app.settings import Settings

    settings = Settings(state_url=url, service_id=SERVICE_ID, migrate_on_start=False)
    app = create_app(settings, parse_config(config), run_scheduler=False)
    figures = {}
    async with app.router.lifespan_context(app):
        assert await app.state.runtime.history.refresh()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://drwatch") as client:
            for path in PATHS:
                timings = []
                for _ in range(requests):
                    began = time.perf_counter()
                    response = await client.get(path)
                    timings.append((time.perf_counter() - began) * 1000)
                    assert response.status_code in (200, 503), response.text
                timings.sort()
                figures[path] = (timings[len(timings) // 2], timings[int(len(timings) * 0.99)])
    return figures


PATHS = ("/health", "/api/slo", "/api/incidents", "/api/slo?scope=all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    # Replaying 90 days through the Monitor would log every state change.
    logging.getLogger("drwatch").setLevel(logging.ERROR)

    workdir = Path(tempfile.mkdtemp(prefix="drwatch-bench-history-"))
    backups = workdir / "backups"
    backups.mkdir()
    (backups / "latest.dump").write_bytes(b"PGDMP" + b"\0" * 4096)
    cluster = PostgresCluster.create(name="bench-history")
    cluster.psql("CREATE DATABASE drwatch_state")
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/drwatch_state"
    port = free_port()
    config = document(port, backups)
    server = None
    try:
        upgrade(url)
        began = time.perf_counter()
        history = synthetic_history(config, time.time(), random.Random(args.seed))
        asyncio.run(fill(url, history))
        transitions, verdicts, points, spans = history
        print(
            f"history: {len(transitions)} check transitions, {len(verdicts)} verdict changes, "
            f"{len(points)} recovery points, {len(spans)} coverage spans "
            f"(built and written in {time.perf_counter() - began:.1f} s)"
        )
        cpu, incidents = asyncio.run(refresh_cpu(url, config))
        per_minute = cpu * 60 / REFRESH_INTERVAL
        print(
            f"refresh: {cpu * 1000:.0f} ms CPU each ({incidents} incidents of this replica), "
            f"{per_minute:.2f} s CPU per minute at one refresh per {REFRESH_INTERVAL:g} s "
            f"(budget 1 s)"
        )

        print(f"\nin process, one request at a time: {'p50 ms':>8} {'p99 ms':>8}")
        for path, (p50, p99) in asyncio.run(in_process_latency(url, config)).items():
            print(f"  {path:<40} {p50:>8.2f} {p99:>8.2f}")

        config_path = workdir / "drwatch.json"
        config_path.write_text(json.dumps(config))
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DRWATCH_CONFIG": str(config_path),
            "DRWATCH_PORT": str(port),
            "DRWATCH_HOST": "127.0.0.1",
            "DRWATCH_STATE_URL": url,
            "DRWATCH_SERVICE_ID": SERVICE_ID,
            "DRWATCH_LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL
        )
        wait_for_port(port, 30)
        time.sleep(3)  # the first refresh and the first round of checks
        base = f"http://127.0.0.1:{port}"
        figures = {}
        for path in PATHS:
            figures[path] = wrk(base + path, args.duration, args.connections)
        health_rate = figures["/health"][0]
        print(f"\nwrk, {args.connections} connections")
        print(f"{'path':<22} {'req/s':>9} {'p99 ms':>8} {'rate vs /health':>16}")
        for path, (rate, p99) in figures.items():
            print(f"{path:<22} {rate:>9.0f} {p99:>8.2f} {rate / health_rate:>16.2f}")
        print("budget: p99 <= 20 ms for the history answers")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        cluster.destroy()


if __name__ == "__main__":
    main()
