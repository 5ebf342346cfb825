"""Overload benchmark: goodput of drwatch and prometheus-blackbox-exporter past their capacity.

One local target (a prometheus-blackbox-exporter answering ``/-/healthy``, Go's net/http, so the
target is never the bottleneck), in one run:

1. drwatch's capacity: ``drwatch serve`` with far more http checks than it can run (2 s interval,
   1 s timeout) for a while; its passing runs per second there is the capacity ``C``.
2. For offered loads of 0.5, 1, 2 and 4 x ``C`` (checks x 1 / interval): ``drwatch serve`` with
   that many checks, and a second blackbox exporter probing the same target at the same offered
   rate (``GET /probe`` sent open-loop at that rate, each with a 1 s timeout, at most 512 in
   flight: what a Prometheus scraping that many probe targets asks of it).
   Per load: passing probes/s, failed runs/s, skipped runs/s, scheduler lag p99 and RSS.
3. The goodput ratios the overload budget is about: passing runs/s at 2 x against 1 x (>= 0.9)
   and at 4 x against 1 x (>= 0.8), and the share of failed runs (budget: none; the target is
   healthy).
4. 5,000 checks at a 10 s interval: start-up to ready (budget <= 2 s) and RSS (<= 150 MB).

    .venv/bin/python bench/overload.py [--measure 20] [--capacity RUNS_PER_S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.probes import blackbox_exporter, free_port, read_body, rss_mb  # noqa: E402

INTERVAL = 2.0
TIMEOUT = 1.0
_SAMPLE = re.compile(rb"^(drwatch_check_(?:runs|overruns)_total)\{([^}]*)\} (\S+)$", re.MULTILINE)


def http_get(url: str, timeout: float = 30.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except OSError:
        return 0, b""


def write_config(path: Path, url: str, checks: int, interval: float, timeout: float) -> None:
    """``checks`` http checks against ``url``, one flow mapping per line (fast to parse). The
    first is critical, so /health/ready waits for a first result; the others are info."""
    with path.open("w") as out:
        out.write("checks:\n")
        for i in range(checks):
            criticality = "critical" if i == 0 else "info"
            out.write(
                f"  - {{name: web-{i}, type: http, criticality: {criticality}, "
                f"interval: {interval}s, "
                f"timeout: {timeout}s, params: {{url: '{url}'}}}}\n"
            )


@dataclass
class Drwatch:
    """A ``drwatch serve`` process started by :func:`serve`."""

    process: subprocess.Popen[bytes]
    base: str
    ready_after: float  # seconds from process start to /health/ready 200

    def get(self, path: str) -> tuple[int, bytes]:
        return http_get(self.base + path)

    def totals(self) -> dict[str, float]:
        """Runs by result and skipped runs, summed over all checks, from /metrics."""
        _, body = self.get("/metrics")
        totals = {"pass": 0.0, "warn": 0.0, "fail": 0.0, "skipped": 0.0}
        for name, labels, value in _SAMPLE.findall(body):
            if name == b"drwatch_check_overruns_total":
                totals["skipped"] += float(value)
            else:
                result = re.search(rb'result="(\w+)"', labels)
                if result:
                    totals[result.group(1).decode()] += float(value)
        return totals

    def scheduler(self) -> dict[str, Any]:
        _, body = self.get("/api/scheduler")
        return dict(json.loads(body))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serve(directory: Path, config: Path, **env_extra: str) -> Iterator[Drwatch]:
    """``drwatch serve`` with ``config``; waits for /health/ready (60 s at most)."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DRWATCH_CONFIG": str(config),
        "DRWATCH_PORT": str(port),
        "DRWATCH_HOST": "127.0.0.1",
        "DRWATCH_STATE_URL": f"sqlite+aiosqlite:///{directory}/state-{port}.db",
        "DRWATCH_LOG_LEVEL": "ERROR",
        **env_extra,
    }
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    log = (directory / f"drwatch-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        while http_get(f"{base}/health/ready", 2)[0] != 200:
            if process.poll() is not None:
                raise RuntimeError(f"drwatch serve exited; see {log.name}")
            if time.perf_counter() - started > 60:
                raise RuntimeError("drwatch did not become ready within 60 s")
            time.sleep(0.02)
        yield Drwatch(process, base, time.perf_counter() - started)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass
class Figures:
    offered: float  # runs (probes) per second asked for
    passed: float  # per second
    failed: float
    skipped: float
    lag_p99: float | None = None
    rss_mb: float | None = None
    cpu_share: float | None = None  # CPU seconds per second
    ready_after: float | None = None


def measure_drwatch(
    directory: Path, target: str, checks: int, warmup: float, seconds: float
) -> Figures:
    config = directory / f"drwatch-{checks}.yaml"
    write_config(config, target, checks, INTERVAL, TIMEOUT)
    with serve(directory, config) as drwatch:
        time.sleep(warmup)
        before, cpu_before, t0 = drwatch.totals(), drwatch.cpu_seconds(), time.perf_counter()
        time.sleep(seconds)
        after, cpu_after, t1 = drwatch.totals(), drwatch.cpu_seconds(), time.perf_counter()
        lag = drwatch.scheduler().get("lag_seconds", {}).get("p99")
        rss, _ = rss_mb(drwatch.process.pid)
        elapsed = t1 - t0
        return Figures(
            offered=checks / INTERVAL,
            passed=(after["pass"] - before["pass"]) / elapsed,
            failed=(after["fail"] + after["warn"] - before["fail"] - before["warn"]) / elapsed,
            skipped=(after["skipped"] - before["skipped"]) / elapsed,
            lag_p99=lag,
            rss_mb=rss,
            cpu_share=(cpu_after - cpu_before) / elapsed,
            ready_after=drwatch.ready_after,
        )


async def drive_blackbox_open_loop(
    port: int, target: str, rate: float, seconds: float, max_in_flight: int = 512
) -> Figures:
    """``GET /probe`` at ``rate`` per second for ``seconds``, each with a 1 s timeout.

    A probe that finds all ``max_in_flight`` connections busy when it falls due is skipped (a
    Prometheus scrape loop does not start a scrape while the previous one of the target runs).
    """
    path = f"/probe?target={target}&module=http_2xx"
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    counts = {"passed": 0, "failed": 0, "skipped": 0, "offered": 0}
    in_flight = 0
    tasks: set[asyncio.Task[None]] = set()

    async def probe() -> None:
        nonlocal in_flight
        in_flight += 1
        try:
            if idle:
                reader, writer = idle.pop()
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
                body = await asyncio.wait_for(read_body(reader, head), TIMEOUT)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                writer.close()
                counts["failed"] += 1
                return
            idle.append((reader, writer))
            counts["passed" if b"probe_success 1" in body else "failed"] += 1
        finally:
            in_flight -= 1

    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    while (now := loop.time()) - started < seconds:
        due = int((now - started) * rate)
        for _ in range(due - sent):
            counts["offered"] += 1
            if in_flight >= max_in_flight:
                counts["skipped"] += 1
                continue
            task = asyncio.create_task(probe())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent = due
        await asyncio.sleep(0.002)
    elapsed = loop.time() - started
    await asyncio.gather(*tasks, return_exceptions=True)
    for _, writer in idle:
        writer.close()
    return Figures(
        offered=counts["offered"] / elapsed,
        passed=counts["passed"] / elapsed,
        failed=counts["failed"] / elapsed,
        skipped=counts["skipped"] / elapsed,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", type=float, default=20.0, help="seconds measured per load")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring")
    parser.add_argument("--capacity", type=float, help="skip the calibration; runs/s")
    parser.add_argument("--calibration-load", type=float, default=5000.0, help="runs/s offered")
    parser.add_argument("--loads", default="0.5,1,2,4", help="factors of the capacity")
    parser.add_argument("--skip-blackbox", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="drwatch-bench-overload-") as tmp:
        directory = Path(tmp)
        (directory / "target").mkdir()
        (directory / "prober").mkdir()
        with (
            blackbox_exporter(directory / "target") as target_port,
            blackbox_exporter(directory / "prober") as prober_port,
        ):
            target = f"http://127.0.0.1:{target_port}/-/healthy"
            print(
                f"target {target} (Go net/http); http checks every {INTERVAL:g} s with a "
                f"{TIMEOUT:g} s timeout; {os.cpu_count()} CPUs; {args.measure:g} s per load"
            )
            capacity = args.capacity
            if capacity is None:
                checks = int(args.calibration_load * INTERVAL)
                calibration = measure_drwatch(directory, target, checks, args.warmup, args.measure)
                capacity = calibration.passed
                print(
                    f"calibration: {checks} checks offered {calibration.offered:.0f} runs/s, "
                    f"drwatch passed {calibration.passed:.0f}/s -> capacity C = {capacity:.0f} "
                    f"runs/s (failed {calibration.failed:.1f}/s, skipped "
                    f"{calibration.skipped:.0f}/s, RSS {calibration.rss_mb:.0f} MB)"
                )
            results: dict[tuple[str, float], Figures] = {}
            factors = [float(f) for f in args.loads.split(",")]
            for factor in factors:
                checks = max(1, round(capacity * factor * INTERVAL))
                results["drwatch", factor] = measure_drwatch(
                    directory, target, checks, args.warmup, args.measure
                )
                if not args.skip_blackbox:
                    results["blackbox", factor] = asyncio.run(
                        drive_blackbox_open_loop(
                            prober_port, target, capacity * factor, args.measure
                        )
                    )
            print()
            print(
                f"{'engine':<10}{'load':>6}{'offered/s':>11}{'passed/s':>10}{'failed/s':>10}"
                f"{'skipped/s':>11}{'lag p99 s':>11}{'RSS MB':>8}{'CPU':>6}"
            )
            for (engine, factor), f in results.items():
                lag = f"{f.lag_p99:.3f}" if f.lag_p99 is not None else "-"
                rss = f"{f.rss_mb:.0f}" if f.rss_mb is not None else "-"
                cpu = f"{f.cpu_share:.2f}" if f.cpu_share is not None else "-"
                print(
                    f"{engine:<10}{factor:>5g}x{f.offered:>11.0f}{f.passed:>10.0f}"
                    f"{f.failed:>10.1f}{f.skipped:>11.0f}{lag:>11}{rss:>8}{cpu:>6}"
                )
            print()
            for engine in ("drwatch", "blackbox"):
                if not {(engine, 1.0), (engine, 2.0), (engine, 4.0)} <= set(results):
                    continue
                base = results[engine, 1.0].passed
                twice, four = results[engine, 2.0].passed, results[engine, 4.0].passed
                print(
                    f"{engine}: goodput 2x / 1x = {twice / base:.2f} (budget >= 0.9), "
                    f"4x / 1x = {four / base:.2f} (budget >= 0.8)"
                )
            failed = sum(f.failed for (e, _), f in results.items() if e == "drwatch")
            print(f"drwatch failed runs/s summed over all loads: {failed:.2f} (budget 0)")
            if not args.skip_blackbox:
                for factor in factors:
                    ours, theirs = results["drwatch", factor], results["blackbox", factor]
                    print(
                        f"at {factor:g}x: drwatch passed / blackbox passed = "
                        f"{ours.passed / max(theirs.passed, 1e-9):.2f}"
                    )

            if args.skip_startup:
                return 0
            config = directory / "drwatch-5000.yaml"
            write_config(config, target, 5000, 10.0, 5.0)
            with serve(directory, config) as drwatch:
                time.sleep(30)
                rss, peak = rss_mb(drwatch.process.pid)
                lag = drwatch.scheduler().get("lag_seconds", {})
                print()
                print(
                    f"5,000 checks at 10 s: ready after {drwatch.ready_after:.2f} s "
                    f"(budget <= 2 s), RSS {rss:.0f} MB after 30 s (peak {peak:.0f} MB; budget "
                    f"<= 150 MB), scheduler lag p99 {lag.get('p99')} s"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
