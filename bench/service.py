"""Start-up, memory and /metrics cost of a drwatch with many checks.

    .venv/bin/python bench/service.py [--checks 1000]

Starts `drwatch serve` with N http checks (30 s interval) against a local HTTP server and prints:
time from process start to /health/ready = 200 (budget <= 1 s for 1,000 checks), RSS after the
first rounds (budget <= 100 MB idle), and GET /metrics, median of 20 scrapes, plain and gzip.

Then, in this process, the cost of the /metrics body itself for the same number of checks, each
with a result: a full render (collector + text), a scrape of an unchanged snapshot (served from
the bytes rendered once; budget <= 5 ms) and prometheus_client.generate_latest of the same
samples, as it ran on every scrape before (budget for a full render <= 25 ms).
"""

from __future__ import annotations

import argparse
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port  # noqa: E402


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metrics_costs(checks: int, url: str) -> None:
    """Full render, served bytes and generate_latest of /metrics with ``checks`` results."""
    from prometheus_client import generate_latest

    from app.checks.base import Result, Status
    from app.config import parse_config
    from app.metrics import Exposition, MetricSources, build_registry
    from app.monitor import Monitor

    config = parse_config(
        {
            "checks": [
                {"name": f"web-{i}", "type": "http", "params": {"url": url}} for i in range(checks)
            ]
        }
    )
    monitor = Monitor(config.checks)
    for spec in config.checks:
        monitor.record(spec.name, Result(Status.PASS, "HTTP 200 in 1 ms", duration=0.001))
    sources = MetricSources(snapshot=lambda: monitor.snapshot, version="bench")
    registry = build_registry(sources)
    clock = [0.0]
    exposition = Exposition(registry, sources, clock=lambda: clock[0])

    def median_ms(work: Any, rounds: int = 20) -> float:
        timings = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            work()
            timings.append(time.perf_counter() - t0)
        return statistics.median(timings) * 1000

    def full_render() -> None:
        clock[0] += 10.0  # past MAX_AGE: renders again
        exposition.body()

    full = median_ms(full_render)
    exposition.body()
    served = median_ms(exposition.body)
    exposition.body(gzipped=True)
    served_gzip = median_ms(lambda: exposition.body(gzipped=True))
    baseline = median_ms(lambda: generate_latest(registry))
    size, packed = len(exposition.body()), len(exposition.body(gzipped=True))
    print(f"\n/metrics body with {checks} checks, in-process, median of 20\n")
    print(f"  full render (collector + text)  {full:8.2f} ms   (budget <= 25 ms), {size} B")
    print(f"  unchanged snapshot, from bytes  {served:8.3f} ms   (budget <= 5 ms)")
    print(f"  the same, gzip copy             {served_gzip:8.3f} ms   {packed} B")
    print(f"  generate_latest (before)        {baseline:8.2f} ms")
    print(f"  ratio served / generate_latest  {served / baseline:8.4f}")
    print(f"  ratio full render / generate_latest {full / baseline:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=1000)
    args = parser.parse_args()

    class Target(http.server.ThreadingHTTPServer):
        # The default backlog (5) drops SYNs when many checks connect at once, and the kernel's
        # 1 s retransmit would be measured as drwatch's start-up time.
        request_queue_size = 4096
        daemon_threads = True

    target = Target(("127.0.0.1", 0), _Ok)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    target_url = f"http://127.0.0.1:{target.server_address[1]}/"

    workdir = Path(tempfile.mkdtemp(prefix="drwatch-bench-service-"))
    config = workdir / "drwatch.yaml"
    config.write_text(
        "checks:\n"
        + "".join(
            f"  - {{name: web-{i}, type: http, interval: 30s, params: {{url: '{target_url}'}}}}\n"
            for i in range(args.checks)
        )
    )
    port = free_port()
    env = {
        **os.environ,
        "DRWATCH_CONFIG": str(config),
        "DRWATCH_HOST": "127.0.0.1",
        "DRWATCH_PORT": str(port),
        "DRWATCH_STATE_URL": f"sqlite+aiosqlite:///{workdir}/state.db",
        "DRWATCH_LOG_LEVEL": "WARNING",
    }
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL
    )
    try:
        while _get(f"{base}/health/live") == 0:
            if time.perf_counter() - started > 60 or process.poll() is not None:
                sys.exit("drwatch did not start within 60 s")
            time.sleep(0.02)
        listening = time.perf_counter() - started
        while _get(f"{base}/health/ready") != 200:
            if time.perf_counter() - started > 60 or process.poll() is not None:
                sys.exit("drwatch did not become ready within 60 s")
            time.sleep(0.02)
        ready = time.perf_counter() - started
        time.sleep(10)  # a few rounds of runs, then idle between them
        rss = _rss_mb(process.pid)
        scrapes: dict[str, tuple[float, int]] = {}
        for encoding in ("identity", "gzip"):
            timings = []
            size = 0
            for _ in range(20):
                request = urllib.request.Request(
                    f"{base}/metrics", headers={"Accept-Encoding": encoding}
                )
                t0 = time.perf_counter()
                with urllib.request.urlopen(request, timeout=10) as response:
                    size = len(response.read())
                timings.append(time.perf_counter() - t0)
            scrapes[encoding] = (statistics.median(timings) * 1000, size)
        print(f"\ndrwatch with {args.checks} http checks (30 s interval)\n")
        print(f"  start-up to listening           {listening:6.2f} s")
        print(f"  start-up to /health/ready 200   {ready:6.2f} s    (budget <= 1 s at 1,000)")
        print(f"  RSS after the first rounds      {rss:6.1f} MB   (budget <= 100 MB idle)")
        for encoding, (ms, size) in scrapes.items():
            print(f"  GET /metrics {encoding:<8}, median of 20 {ms:6.1f} ms   {size} B")
    finally:
        process.terminate()
        process.wait(15)
    metrics_costs(args.checks, target_url)
    target.shutdown()


if __name__ == "__main__":
    main()
