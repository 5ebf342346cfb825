"""/health under load: drwatch vs a bare ASGI app, and drwatch while 200 checks hang.

    .venv/bin/python bench/health.py [--duration 10] [--connections 50]

Runs wrk (Debian package `wrk`) on loopback against, in one run:
  (a) drwatch /health with 20 checks configured (throwaway PostgreSQL and Redis),
  (b) a bare ASGI app returning constant JSON under the same uvicorn settings,
  (c) drwatch /health while 200 checks hang on a black-holed port.
Prints req/s and p99 latency for each and the ratios a/b (budget >= 0.5) and c/a (>= 0.83).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import (  # noqa: E402
    BlackHole,
    PostgresCluster,
    RedisServer,
    free_port,
    wait_for_port,
)

PYTHON = sys.executable


def wrk(url: str, duration: int, connections: int) -> tuple[float, float]:
    """(requests/s, p99 latency in ms) from one wrk run."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"  note: {errors.group(1)} non-2xx responses")
    return rate, p99_ms


def start_drwatch(config: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "DRWATCH_CONFIG": str(config),
        "DRWATCH_PORT": str(port),
        "DRWATCH_HOST": "127.0.0.1",
        "DRWATCH_STATE_URL": f"sqlite+aiosqlite:///{workdir}/state-{port}.db",
        "DRWATCH_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [PYTHON, "-m", "app.cli", "serve"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL
    )
    wait_for_port(port, 30)
    return process, port


def start_bare() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--no-server-header",
        ],
        cwd=ROOT,
    )
    wait_for_port(port, 30)
    return process, port


def write_config(path: Path, checks: list[str]) -> None:
    path.write_text("checks:\n" + "".join(checks))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="drwatch-bench-"))
    pg = PostgresCluster.create(name="bench")
    redis = RedisServer.create()
    hole = BlackHole()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        normal = []
        for i in range(10):
            normal.append(
                f"  - {{name: db-{i}, type: postgres, interval: 5s, params: {{dsn: '{pg.dsn}'}}}}\n"
            )
            normal.append(
                f"  - {{name: cache-{i}, type: redis, interval: 5s, "
                f"params: {{url: '{redis.url}'}}}}\n"
            )
        hanging = [
            f"  - {{name: hang-{i}, type: postgres, criticality: info, interval: 10s, "
            f"timeout: 9s, params: {{dsn: 'postgresql://x@127.0.0.1:{hole.port}/x'}}}}\n"
            for i in range(200)
        ]
        write_config(workdir / "normal.yaml", normal)
        write_config(workdir / "hanging.yaml", normal + hanging)

        results: dict[str, tuple[float, float]] = {}
        for label, starter in (
            ("a", lambda: start_drwatch(workdir / "normal.yaml", workdir)),
            ("b", start_bare),
            ("c", lambda: start_drwatch(workdir / "hanging.yaml", workdir)),
        ):
            process, port = starter()
            processes.append(process)
            time.sleep(3)  # first round of checks, and the hanging ones are now hanging
            wrk(f"http://127.0.0.1:{port}/health", 2, args.connections)  # warm-up
            results[label] = wrk(f"http://127.0.0.1:{port}/health", args.duration, args.connections)
            process.terminate()
            process.wait(15)

        names = {
            "a": "drwatch /health, 20 checks",
            "b": "bare ASGI constant JSON",
            "c": "drwatch /health, 200 checks hanging",
        }
        print(f"\n/health on loopback, wrk -t2 -c{args.connections} -d{args.duration}s\n")
        for label in ("a", "b", "c"):
            rate, p99 = results[label]
            print(f"  ({label}) {names[label]:<40} {rate:>10.0f} req/s   p99 {p99:6.2f} ms")
        a, b, c = (results[x][0] for x in "abc")
        print(f"\n  a/b = {a / b:.2f}  (budget >= 0.5)")
        print(f"  c/a = {c / a:.2f}  (budget >= 0.83)")
        print(f"  p99 (a) = {results['a'][1]:.2f} ms  (budget <= 5 ms)")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        hole.close()
        redis.destroy()
        pg.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
