"""Probe engine benchmark: drwatch's http checks against prometheus-blackbox-exporter.

Part 1 — checks per second against one local target at 50 concurrent checks, side by side in one
run: drwatch's http checks through the runner (the engine's shared aiohttp pool, connections kept
alive), the same with a new connection per probe (what blackbox does), plain httpx GETs with a
client per check and with one shared client (the encode/httpx#3215 case), and
prometheus-blackbox-exporter's http module driven with concurrent ``GET /probe`` requests. Prints
each rate, drwatch's RSS, and the ratio drwatch / blackbox (budget >= 1.0).

Part 2 — 5,000 configured http checks at a 10 s interval against local targets: starts
``drwatch serve`` with a generated configuration, waits about a minute, reads ``GET /api/scheduler``
and prints scheduler lag p50/p99/max (budget p99 < 1 s) and the service's RSS.

The target is a second blackbox exporter process (Go's net/http answering ``/-/healthy``), so the
target is never the bottleneck of either side. Everything runs on 127.0.0.1 and stops by itself.

    .venv/bin/python bench/probes.py [--seconds 10] [--concurrency 50] [--skip-scheduler]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BLACKBOX = shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter"
BLACKBOX_CONFIG = """modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB of a process, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


@contextlib.contextmanager
def blackbox_exporter(directory: Path) -> Iterator[int]:
    """A prometheus-blackbox-exporter on a free port; yields the port."""
    config = directory / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    port = free_port()
    process = subprocess.Popen(
        [
            BLACKBOX,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- part 1: drwatch side (runs in its own process so its RSS is its own) ------------------------


async def drwatch_worker(
    target: str, concurrency: int, seconds: float, mode: str
) -> dict[str, Any]:
    """Runs ``concurrency`` http checks back to back for ``seconds`` through the runner."""
    if mode.startswith("httpx"):
        return await httpx_worker(target, concurrency, seconds, mode)
    from app.config import parse_config
    from app.runner import run_check

    params: dict[str, Any] = {"url": target, "expected_status": [200]}
    if mode == "new-connection":
        params["headers"] = {"Connection": "close"}
    document = {
        "checks": [
            {
                "name": f"web-{i}",
                "type": "http",
                "timeout": "5s",
                "interval": "10s",
                "params": params,
            }
            for i in range(concurrency)
        ]
    }
    checks = [spec.build() for spec in parse_config(document).checks]
    counts = {"runs": 0, "passed": 0}
    deadline = time.perf_counter() + seconds

    async def loop(check: Any) -> None:
        while time.perf_counter() < deadline:
            result = await run_check(check)
            counts["runs"] += 1
            counts["passed"] += result.status.value == "pass"

    started = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in checks))
    elapsed = time.perf_counter() - started
    rss, peak = rss_mb(os.getpid())
    for check in checks:
        await check.close()
    return {**counts, "elapsed": elapsed, "rss_mb": rss, "peak_rss_mb": peak}


async def httpx_worker(target: str, concurrency: int, seconds: float, mode: str) -> dict[str, Any]:
    """Plain httpx GETs (no runner, no checks): the engine drwatch measured and did not choose."""
    import httpx

    if mode == "httpx-shared-client":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        shared = httpx.AsyncClient(limits=limits)
        clients = [shared] * concurrency
    else:
        clients = [httpx.AsyncClient() for _ in range(concurrency)]
    counts = {"runs": 0, "passed": 0}
    deadline = time.perf_counter() + seconds

    async def loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            response = await client.get(target)
            counts["runs"] += 1
            counts["passed"] += response.status_code == 200

    started = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in clients))
    elapsed = time.perf_counter() - started
    rss, peak = rss_mb(os.getpid())
    for client in set(clients):
        await client.aclose()
    return {**counts, "elapsed": elapsed, "rss_mb": rss, "peak_rss_mb": peak}


def run_drwatch(target: str, concurrency: int, seconds: float, mode: str) -> dict[str, Any]:
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            mode,
            "--target",
            target,
            "--concurrency",
            str(concurrency),
            "--seconds",
            str(seconds),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=seconds + 120,
    )
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


# --- part 1: blackbox side -----------------------------------------------------------------------


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """The body of an HTTP/1.1 response, by Content-Length or chunked transfer coding."""
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if length is not None:
        return await reader.readexactly(int(length.group(1)))
    chunks = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return b"".join(chunks)
        chunks.append(chunk[:-2])


async def drive_blackbox(
    port: int, target: str, concurrency: int, seconds: float
) -> dict[str, Any]:
    """Concurrent keep-alive ``GET /probe`` requests; counts probes and successful ones."""
    path = f"/probe?target={target}&module=http_2xx"
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    counts = {"runs": 0, "passed": 0}
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                body = await read_body(reader, head)
                counts["runs"] += 1
                counts["passed"] += b"probe_success 1" in body
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return {**counts, "elapsed": time.perf_counter() - started}


# --- part 2: 5,000 checks on the scheduler -------------------------------------------------------


def scheduler_lag(directory: Path, targets: list[str], checks: int, wait: float) -> dict[str, Any]:
    config = directory / "drwatch.yaml"
    lines = ["checks:"]
    for i in range(checks):
        lines += [
            f"  - name: web-{i}",
            "    type: http",
            "    criticality: info",
            "    interval: 10s",
            "    timeout: 5s",
            "    params:",
            f"      url: {targets[i % len(targets)]}",
        ]
    config.write_text("\n".join(lines) + "\n")
    port = free_port()
    env = {
        **os.environ,
        "DRWATCH_CONFIG": str(config),
        "DRWATCH_PORT": str(port),
        "DRWATCH_HOST": "127.0.0.1",
        "DRWATCH_STATE_URL": f"sqlite+aiosqlite:///{directory}/state.db",
        "DRWATCH_LOG_LEVEL": "WARNING",
    }
    drwatch = shutil.which("drwatch", path=str(Path(sys.executable).parent)) or "drwatch"
    log = (directory / "drwatch.log").open("wb")
    process = subprocess.Popen(
        [drwatch, "serve"], env=env, cwd=directory, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, timeout=60)
        started = time.monotonic()
        while time.monotonic() - started < wait:
            if process.poll() is not None:
                raise RuntimeError(f"drwatch serve exited; see {directory / 'drwatch.log'}")
            time.sleep(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/scheduler", timeout=10) as r:
            status = json.loads(r.read())
        rss, peak = rss_mb(process.pid)
        return {"scheduler": status, "rss_mb": rss, "peak_rss_mb": peak}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --- main ----------------------------------------------------------------------------------------


def rate(figures: dict[str, Any]) -> float:
    return float(figures["runs"]) / float(figures["elapsed"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--scheduler-wait", type=float, default=70.0)
    parser.add_argument("--skip-scheduler", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        with contextlib.suppress(ImportError):
            import uvloop  # drwatch serve runs on uvicorn's uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        figures = asyncio.run(
            drwatch_worker(args.target, args.concurrency, args.seconds, args.worker)
        )
        print(json.dumps(figures))
        return 0

    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="drwatch-bench-") as tmp:
        directory = Path(tmp)
        (directory / "target").mkdir()
        (directory / "prober").mkdir()
        with (
            blackbox_exporter(directory / "target") as target_port,
            blackbox_exporter(directory / "prober") as prober_port,
        ):
            target = f"http://127.0.0.1:{target_port}/-/healthy"
            print(
                f"target: {target} (Go net/http), {args.concurrency} concurrent checks, "
                f"{args.seconds:g} s per run, {os.cpu_count()} CPUs"
            )
            results: dict[str, dict[str, Any]] = {}
            modes = (
                "drwatch",
                "new-connection",
                "httpx-client-per-check",
                "httpx-shared-client",
            )
            for mode in modes:
                results[mode] = run_drwatch(target, args.concurrency, args.seconds, mode)
            results["blackbox"] = asyncio.run(
                drive_blackbox(prober_port, target, args.concurrency, args.seconds)
            )
            print()
            print(f"{'engine':<38}{'checks/s':>10}{'passed':>9}{'RSS MB':>9}")
            labels = {
                "drwatch": "drwatch http checks (keep-alive)",
                "new-connection": "drwatch, new connection per probe",
                "httpx-client-per-check": "httpx, client per check (raw GETs)",
                "httpx-shared-client": "httpx, one shared client (raw GETs)",
                "blackbox": "prometheus-blackbox-exporter 0.23",
            }
            for mode, figures in results.items():
                rss = f"{figures['rss_mb']:.0f}" if "rss_mb" in figures else "-"
                share = figures["passed"] / max(figures["runs"], 1)
                print(f"{labels[mode]:<38}{rate(figures):>10.0f}{share:>9.1%}{rss:>9}")
            ratio = rate(results["drwatch"]) / rate(results["blackbox"])
            print()
            print(f"ratio drwatch / blackbox: {ratio:.2f} (budget >= 1.0)")
            print(
                "ratio drwatch engine / httpx client per check: "
                f"{rate(results['drwatch']) / rate(results['httpx-client-per-check']):.2f}"
            )
            print(
                "ratio new connection per probe / blackbox: "
                f"{rate(results['new-connection']) / rate(results['blackbox']):.2f}"
            )

            if args.skip_scheduler:
                return 0
            print()
            print(
                f"scheduler: {args.checks} http checks at a 10 s interval, "
                f"reading /api/scheduler after {args.scheduler_wait:g} s ..."
            )
            try:
                figures = scheduler_lag(directory, [target], args.checks, args.scheduler_wait)
            except (OSError, RuntimeError, ValueError) as exc:
                print(f"scheduler part failed: {exc}")
                return 1
            lag = figures["scheduler"].get("lag_seconds") or {}
            print(
                f"jobs {figures['scheduler'].get('jobs')}, lag p50 {lag.get('p50')} s, "
                f"p99 {lag.get('p99')} s (budget < 1 s), max {lag.get('max')} s; "
                f"RSS {figures['rss_mb']:.0f} MB (peak {figures['peak_rss_mb']:.0f} MB)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
