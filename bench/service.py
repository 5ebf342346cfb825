"""Start-up, memory and /metrics cost of a drwatch with many checks.

    .venv/bin/python bench/service.py [--checks 1000]

Starts `drwatch serve` with N http checks (30 s interval) against a local HTTP server and prints:
time from process start to /health/ready = 200 (budget <= 2 s), RSS after the first rounds
(budget <= 100 MB idle), and the time to render /metrics, median of 20 scrapes (budget < 50 ms
for 1,000 checks).
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
        timings = []
        for _ in range(20):
            t0 = time.perf_counter()
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
                size = len(response.read())
            timings.append(time.perf_counter() - t0)
        render = statistics.median(timings) * 1000
        print(f"\ndrwatch with {args.checks} http checks (30 s interval)\n")
        print(f"  start-up to listening           {listening:6.2f} s")
        print(f"  start-up to /health/ready 200   {ready:6.2f} s    (budget <= 2 s)")
        print(f"  RSS after the first rounds      {rss:6.1f} MB   (budget <= 100 MB idle)")
        print(f"  GET /metrics, median of 20      {render:6.1f} ms   (budget < 50 ms), {size} B")
    finally:
        process.terminate()
        process.wait(15)
        target.shutdown()


if __name__ == "__main__":
    main()
