"""Snapshot -> bytes: the verbose text explains damping and says how to see hidden outputs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from app.api.render import detailed_health_body, public_health_body, verbose_text
from app.checks.base import Result, Status
from app.config import CheckConfig, parse_config
from app.monitor import Monitor

HINT = "Outputs are hidden: send a token."


def _monitor() -> Monitor:
    config = parse_config(
        {
            "checks": [
                {
                    "name": "openai",
                    "type": "postgres",
                    "criticality": "degraded",
                    "interval": "10s",
                    "params": {"dsn": "postgresql://h/d"},
                },
                {
                    "name": "db",
                    "type": "postgres",
                    "interval": "10s",
                    "params": {"dsn": "postgresql://h/d"},
                },
            ]
        }
    )
    checks: list[CheckConfig] = list(config.checks)
    return Monitor(checks, service_id="sidecar-1", version="1.2.3")


def _result(status: Status, output: str) -> Result:
    return Result(status, output, time=datetime.now(UTC))


def test_a_recovering_check_says_it_is_recovering_next_to_its_passing_output() -> None:
    """fail (rise 2) then one pass: '[-]openai failed (recovering: 1 of 2 passing runs): ...'."""
    monitor = _monitor()
    monitor.record("db", _result(Status.PASS, "db fine"))
    monitor.record("openai", _result(Status.FAIL, "OpenAI is down."))
    monitor.record("openai", _result(Status.PASS, "OpenAI serves model 'gpt-4o-mini'."))
    text = verbose_text(monitor.snapshot, outputs=True)
    assert (
        "[-]openai failed (recovering: 1 of 2 passing runs): OpenAI serves model 'gpt-4o-mini'.\n"
        in text
    )
    assert "[+]db ok\n" in text


def test_a_falling_check_says_how_many_failures_are_left_before_it_fails() -> None:
    """pass then one failure (fall 3): still ok, with the failure shown and explained."""
    monitor = _monitor()
    monitor.record("db", _result(Status.PASS, "db fine"))
    monitor.record("db", _result(Status.FAIL, "db refused the connection."))
    text = verbose_text(monitor.snapshot, outputs=True)
    assert "[+]db ok (failing: 1 of 3 failing runs): db refused the connection.\n" in text


def test_hidden_outputs_come_with_a_hint_and_the_verdict_stays_last() -> None:
    """Without details the reason is withheld, and the text says how to see it."""
    monitor = _monitor()
    monitor.record("db", _result(Status.FAIL, "db refused the connection."))
    text = verbose_text(monitor.snapshot, outputs=False, hint=HINT)
    assert "[-]db failed\n" in text
    assert "refused" not in text
    assert text.endswith(f"{HINT}\nhealth check failed\n")


def test_no_hint_when_nothing_is_withheld() -> None:
    """All checks pass: nothing is hidden, so no hint."""
    monitor = _monitor()
    monitor.record("db", _result(Status.PASS, "db fine"))
    monitor.record("openai", _result(Status.PASS, "fine"))
    assert HINT not in verbose_text(monitor.snapshot, outputs=False, hint=HINT)


def test_health_bodies_put_status_first_and_are_rendered_once_per_snapshot() -> None:
    """The public body has no checks; both bodies are cached on their snapshot."""
    monitor = _monitor()
    monitor.record("db", _result(Status.PASS, "db fine"))
    monitor.record("openai", _result(Status.PASS, "fine"))
    snapshot = monitor.snapshot
    public = public_health_body(snapshot)
    assert public.startswith(b'{"status":"pass"')
    assert "checks" not in json.loads(public)
    assert public_health_body(snapshot) is public
    detailed = detailed_health_body(snapshot)
    assert json.loads(detailed)["checks"]["db"][0]["output"] == "db fine"
    monitor.record("db", _result(Status.WARN, "db slow"))
    assert public_health_body(monitor.snapshot) != public
