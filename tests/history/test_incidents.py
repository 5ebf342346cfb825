"""Incidents from synthetic histories: fields, filters, /api/incidents and `drwatch incidents`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.history.cache import compute
from app.history.incidents import rfc3339
from app.history.slo import SloSpec
from app.store.repository import Store
from tests.harness import running_app, settings_for
from tests.history.synthetic import DAY, NOW, SyntheticReplica, at, configs, outage

REPO = Path(__file__).parents[2]
CHECKS = configs(("database", "critical"), ("openai", "degraded"))
CRITICALITY = {c.name: c.criticality for c in CHECKS}.get


async def _history(url: str, now: float = NOW) -> None:
    """Two database outages (10 min, 2 h; fall 3, rise 2 at 30 s), openai failing 20 minutes,
    and an outage still going on at ``now``."""
    NOW = now
    store = Store.from_url(url, "r1")
    replica = SyntheticReplica(store, CHECKS)
    replica.run(
        NOW - 3 * DAY,
        NOW,
        [
            *outage("database", NOW - 2 * DAY, 600),
            *outage("openai", NOW - DAY, 1200),
            *outage("database", NOW - 12 * 3600, 7200),
            *[(NOW - 600 + 30 * i, "database", "fail") for i in range(10)],
        ],
        closed=False,
    )
    await replica.save()
    await store.dispose()


async def _incidents(url: str, scope: str = "self") -> list[dict[str, Any]]:
    store = Store.from_url(url, "r1")
    try:
        rows = await store.history(at(NOW - 90 * DAY))
    finally:
        await store.dispose()
    view = compute(rows, "r1", SloSpec(), CRITICALITY, NOW)[scope]
    return [incident.as_dict(NOW) for incident in view.incidents]


async def test_incidents_say_when_they_started_were_detected_and_ended(state_url: str) -> None:
    """Newest first; service incidents list their checks; times measured, not guessed."""
    await _history(state_url)
    incidents = await _incidents(state_url)
    assert [(i["scope"], i["check"], i["state"]) for i in incidents] == [
        ("service", None, "open"),
        ("check", "database", "open"),
        ("service", None, "resolved"),
        ("check", "database", "resolved"),
        ("check", "openai", "resolved"),
        ("service", None, "resolved"),
        ("check", "database", "resolved"),
    ]
    service, check = incidents[2], incidents[3]
    assert check["started_at"] == rfc3339(NOW - 12 * 3600)
    assert check["detected_at"] == rfc3339(NOW - 12 * 3600 + 60)
    assert check["resolved_at"] == rfc3339(NOW - 12 * 3600 + 7230)
    assert check["time_to_detect_seconds"] == 60
    assert check["duration_seconds"] == 7230
    assert check["criticality"] == "critical"
    assert check["failover"] is True
    assert service["started_at"] == check["started_at"]
    assert service["time_to_detect_seconds"] == 60
    assert service["checks"] == ["database"]
    assert service["failover"] is True
    assert "database" in service["output"]
    openai = incidents[4]
    assert (openai["criticality"], openai["failover"]) == ("degraded", False)
    still_open = incidents[0]
    assert still_open["resolved_at"] is None
    assert still_open["duration_seconds"] == 600
    assert len({i["id"] for i in incidents}) == len(incidents)


async def test_an_incident_shorter_than_one_interval_still_appears(state_url: str) -> None:
    """fall 1, rise 1: a failure seen by one run and cleared 5 s later is an incident."""
    checks = configs(("push", "critical"), interval=300)
    checks = [c.__class__(**{**c.__dict__, "fall": 1, "rise": 1}) for c in checks]
    store = Store.from_url(state_url, "r1")
    replica = SyntheticReplica(store, checks)
    replica.run(NOW - DAY, NOW, [(NOW - 3600, "push", "fail"), (NOW - 3595, "push", "pass")])
    await replica.save()
    await store.dispose()
    incidents = await _incidents(state_url)
    assert [(i["scope"], i["duration_seconds"]) for i in incidents] == [
        ("service", 5),
        ("check", 5),
    ]


async def test_a_replica_that_died_while_failing_ends_its_incidents(state_url: str) -> None:
    """kill -9 during an outage: the incident ends with the last coverage extension."""
    store = Store.from_url(state_url, "r1")
    replica = SyntheticReplica(store, CHECKS)
    killed = NOW - 3600
    replica.run(NOW - DAY, killed, outage("database", killed - 1800, 7200)[:60], closed=False)
    replica.run(killed + 600, NOW)
    await replica.save()
    await store.dispose()
    incidents = await _incidents(state_url)
    assert {i["resolved_at"] for i in incidents} == {rfc3339(killed)}


async def test_the_api_and_the_cli_list_the_same_incidents(tmp_path: Path) -> None:
    """/api/incidents filters by state, check, since and limit; `drwatch incidents --json`
    prints the same incidents from the store; a bad `since` is a 422 with a message."""
    url = f"sqlite+aiosqlite:///{tmp_path}/state.db"
    document = {
        "checks": [
            {
                "name": c.name,
                "type": "postgres",
                "criticality": c.criticality,
                "interval": "1h",
                "params": {"dsn": "postgresql://u@127.0.0.1:1/d"},
            }
            for c in CHECKS
        ]
    }
    settings = settings_for(tmp_path, service_id="r1", history_refresh=30)
    # Anchored at the real time, so the CLI (which answers at its own "now") sees it too.
    now = float(int(time.time()))
    async with running_app(document, settings, run_scheduler=False) as running:
        await _history(url, now)
        history = running.runtime.history
        await running.wait_until(lambda: history.answers.read_at is not None)
        assert await history.refresh(now=now)
        client = running.client
        everything = (await client.get("/api/incidents")).json()
        resolved = (await client.get("/api/incidents?state=resolved&check=openai")).json()
        recent = (
            await client.get("/api/incidents", params={"since": rfc3339(now - DAY), "limit": 2})
        ).json()
        bad = await client.get("/api/incidents?since=yesterday")
        too_many = await client.get("/api/incidents?limit=100000")
    assert everything["stale"] is False
    assert everything["service_id"] == "r1"
    assert len(everything["incidents"]) == 7
    assert [i["check"] for i in resolved["incidents"]] == ["openai"]
    assert [i["scope"] for i in recent["incidents"]] == ["service", "check"]
    assert bad.status_code == 422
    assert [error["loc"] for error in bad.json()["errors"]] == ["query.since"]
    assert too_many.status_code == 422

    config = tmp_path / "drwatch.yaml"
    config.write_text(json.dumps(document))
    cli = subprocess.run(
        [sys.executable, "-m", "app.cli", "incidents", "--json"],
        env={
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(REPO),
            "DRWATCH_CONFIG": str(config),
            "DRWATCH_STATE_URL": url,
            "DRWATCH_SERVICE_ID": "r1",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    printed = json.loads(cli.stdout)["incidents"]
    # The CLI answers at its own "now": the same incidents, the open one a little longer.
    assert [i["id"] for i in printed] == [i["id"] for i in everything["incidents"]]
