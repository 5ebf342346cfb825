"""A real drwatch for the security tests: `drwatch serve` in its own process, on a free port.

The process runs this checkout's code (PYTHONPATH), logs JSON lines to a file the tests read,
and keeps its state in an SQLite file (or the store URL given), so a test can look for a secret
in everything drwatch wrote: responses, log lines, metrics and the store itself.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.polling import wait_until
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "drwatch.log"

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.db"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def client(self, **options: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **options)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/health/live", timeout=2).status_code in (200, 503)
    return False


@contextlib.contextmanager
def served(
    workdir: Path,
    config: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    *,
    open_files: int | None = None,
) -> Iterator[Served]:
    """drwatch serving ``config`` with ``DRWATCH_*`` settings from ``env``.

    ``open_files`` sets the process's file descriptor limit (``ulimit -n``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "drwatch.yaml"
    config_file.write_text(yaml.safe_dump(dict(config)))
    port = free_port()
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # The app of this checkout, not the one the virtualenv was installed from.
        "PYTHONPATH": str(ROOT),
        "DRWATCH_CONFIG": str(config_file),
        "DRWATCH_HOST": "127.0.0.1",
        "DRWATCH_PORT": str(port),
        "DRWATCH_STATE_URL": f"sqlite+aiosqlite:///{workdir}/state.db",
        "DRWATCH_LOG_FORMAT": "json",
        "DRWATCH_SERVICE_ID": "security-test",
        **(env or {}),
    }

    def limit_open_files() -> None:
        if open_files is not None:
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

    with (workdir / "drwatch.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            env=environ,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=limit_open_files,
        )
    running = Served(process, port, workdir)
    try:
        url = running.url
        wait_until(lambda: process.poll() is not None or _answers(url), 60)
        assert process.poll() is None, running.log()
        yield running
    finally:
        running.stop()
