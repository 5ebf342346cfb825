"""A real drwatch for fault tests: ``python -m app.cli serve`` as a child process.

It listens on a free 127.0.0.1 port that it keeps across restarts (so a client sees the same
address before a kill and after the restart), reads a YAML config written into its directory and
logs to ``drwatch.log`` there. The child runs this checkout's code: ``PYTHONPATH`` is set to the
repository root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.polling import wait_until
from tests.servers import PostgresCluster, free_port

REPO = Path(__file__).resolve().parents[2]
# Every request a test makes of drwatch must be answered within this bound; /health never does
# I/O, so a slower answer is a fault in itself (and fails the request, not a timing assert).
REQUEST_BOUND = 1.0


def drwatch_env(state_url: str, **settings: str) -> dict[str, str]:
    """The environment of a drwatch child: this process's, without its DRWATCH_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRWATCH_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "DRWATCH_STATE_URL": state_url,
            "DRWATCH_HOST": "127.0.0.1",
            "DRWATCH_HEALTH_DETAILS": "always",
            "DRWATCH_LOG_FORMAT": "text",
            "DRWATCH_SERVICE_ID": "drwatch-faults",
        }
    )
    env.update({f"DRWATCH_{name.upper()}": value for name, value in settings.items()})
    return env


def state_url_of(cluster: PostgresCluster, database: str = "state") -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/{database}"


def upgrade_store(state_url: str) -> None:
    """``drwatch db upgrade`` against ``state_url``, as an operator runs it before deploying."""
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "upgrade"],
        env=drwatch_env(state_url),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


class Drwatch:
    """One drwatch service; :meth:`start` and :meth:`kill` / :meth:`stop` may alternate."""

    def __init__(self, root: Path, config: dict[str, Any], state_url: str, **settings: str) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "drwatch.log"
        config_file = root / "drwatch.yaml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.env = {
            **drwatch_env(state_url, **settings),
            "DRWATCH_CONFIG": str(config_file),
            "DRWATCH_PORT": str(self.port),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.url, timeout=REQUEST_BOUND)

    # -- lifecycle

    def start(self, timeout: float = 60.0) -> None:
        """Start the service and wait until it answers /health/live."""
        assert not self.alive, "drwatch is already running"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=REPO,
            )
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise AssertionError(f"drwatch exited while starting; {self.describe()}")
            try:
                if self.client.get("/health/live").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"drwatch did not come up in {timeout:.0f}s; {self.describe()}"
                )
            time.sleep(0.1)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM and a graceful shut-down; SIGKILL if it takes longer than 20 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def close(self) -> None:
        self.stop()
        self.client.close()

    def describe(self) -> str:
        if self.process is None:
            state = "not started"
        elif self.process.poll() is None:
            state = "running"
        else:
            state = f"exited with {self.process.returncode}"
        try:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-25:])
        except OSError:
            tail = "(no log)"
        return f"drwatch ({state}), last log lines:\n{tail}"

    # -- reading it

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, **kwargs)

    def check(self, name: str) -> dict[str, Any]:
        """``/api/checks/{name}``: the check's effective state and its last result."""
        response = self.get(f"/api/checks/{name}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def transitions(self, name: str) -> list[dict[str, Any]]:
        """``/api/checks/{name}/history``, newest first; fails unless it answers 200."""
        response = self.get(f"/api/checks/{name}/history")
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["transitions"]
        return rows

    def metric(self, name: str) -> float:
        """The value of an unlabelled sample in /metrics."""
        text = self.get("/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and not sample.labels:
                    return float(sample.value)
        raise AssertionError(f"{name} is not in /metrics")

    def wait_for(self, condition: Any, what: str, timeout: float = 30.0) -> None:
        """Until ``condition()`` holds; the failure says what was awaited and shows the log."""
        try:
            wait_until(condition, timeout)
        except AssertionError:
            raise AssertionError(f"{what}: not within {timeout:.0f}s; {self.describe()}") from None
