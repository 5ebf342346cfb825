"""A real Prometheus and Alertmanager for end-to-end alerting tests, and a webhook receiver.

Every program runs on a free 127.0.0.1 port with its data in a directory of the caller's, logs to
a file there, and is stopped by :meth:`Program.stop` (terminate, then kill). The webhook receiver
records every Alertmanager notification with the time it arrived.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.servers import free_port


def seconds(duration: str) -> float:
    """A Prometheus duration ("1h30m", "15s") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return float(sum(int(n) * units[u] for n, u in parts))


def alert_rule(rule_files: Sequence[Path], alertname: str) -> dict[str, Any]:
    """The (first) rule of ``alertname`` in the rule files."""
    for path in rule_files:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alertname:
                    return dict(rule)
    raise LookupError(f"no alert {alertname} in {', '.join(str(p) for p in rule_files)}")


class Program:
    """A process started by a test; its stdout and stderr go to ``log``."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        state = "running" if self.alive else f"exited with {self.process.returncode}"
        return f"{self.name} ({state}), last log lines:\n{self.log_tail()}"

    def stop(self, grace: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_http(url: str, program: Program, timeout: float = 60.0) -> None:
    """Until ``url`` answers 200; fails early when ``program`` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not program.alive:
            raise AssertionError(f"{url} never answered: {program.describe()}")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(
        f"{url} did not answer 200 in {timeout:.0f}s ({last}); {program.describe()}"
    )


# --- Alertmanager and Prometheus ----------------------------------------------------------------


@dataclass
class Server:
    program: Program
    url: str


def start_alertmanager(
    binary: str,
    root: Path,
    webhook_url: str,
    *,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> Server:
    """Alertmanager routing every alert, each in its own group, to ``webhook_url``."""
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "route": {
            "receiver": "webhook",
            "group_by": ["..."],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "webhook",
                "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
            }
        ],
    }
    config_file = root / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    program = Program(
        "alertmanager",
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=info",
        ],
        root / "alertmanager.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", program)
    except BaseException:
        program.stop()
        raise
    return Server(program, url)


def start_prometheus(
    binary: str,
    root: Path,
    *,
    job_name: str,
    target: str,
    alertmanager: str,
    rule_files: Sequence[Path],
    interval: str = "1s",
    resend_delay: str = "2s",
) -> Server:
    """Prometheus scraping ``target`` as ``job_name`` and evaluating ``rule_files`` every
    ``interval``, alerting to the Alertmanager at ``alertmanager`` (host:port).

    Alerts evaluated before Prometheus has set up its Alertmanager (its first seconds) are
    dropped and only sent again after ``resend_delay`` (a minute by default), so it is short.
    """
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": [str(p) for p in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": job_name, "static_configs": [{"targets": [target]}]}],
    }
    config_file = root / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    program = Program(
        "prometheus",
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--rules.alert.resend-delay={resend_delay}",
            "--log.level=info",
        ],
        root / "prometheus.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", program)
    except BaseException:
        program.stop()
        raise
    return Server(program, url)


def prometheus_alerts(url: str) -> list[dict[str, Any]]:
    """Prometheus' active alerts (pending and firing) from /api/v1/alerts."""
    response = httpx.get(f"{url}/api/v1/alerts", timeout=5.0)
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()["data"]["alerts"]
    return alerts


def prometheus_query(url: str, query: str) -> list[dict[str, Any]]:
    """The result vector of an instant query."""
    response = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5.0)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


# --- the webhook receiver -----------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One webhook call from Alertmanager (its JSON payload) and when it arrived (Unix time)."""

    arrived: float
    payload: dict[str, Any]

    @property
    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.payload.get("alerts", [])
        return alerts


def _matches(alert: Mapping[str, Any], alertname: str, labels: Mapping[str, str]) -> bool:
    found: Mapping[str, str] = alert.get("labels", {})
    return found.get("alertname") == alertname and all(found.get(k) == v for k, v in labels.items())


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every notification POSTed to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notifications: list[Notification] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.time()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"unparsable": body.decode(errors="replace")}
                with receiver._lock:
                    receiver._notifications.append(Notification(arrived, payload))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def notifications(self) -> list[Notification]:
        with self._lock:
            return list(self._notifications)

    def first(
        self, alertname: str, status: str, since: float, **labels: str
    ) -> Notification | None:
        """The first notification since ``since`` that carries ``alertname`` (with ``labels``)
        in ``status`` ("firing" or "resolved")."""
        for notification in self.notifications:
            if notification.arrived < since:
                continue
            for alert in notification.alerts:
                if alert.get("status") == status and _matches(alert, alertname, labels):
                    return notification
        return None

    def summary(self, since: float) -> str:
        lines = []
        for notification in self.notifications:
            for alert in notification.alerts:
                labels = alert.get("labels", {})
                shown = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
                lines.append(
                    f"  {notification.arrived - since:+8.1f}s {alert.get('status')} "
                    f"{labels.get('alertname')} {{{shown}}}"
                )
        return "\n".join(lines) or "  (none)"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
