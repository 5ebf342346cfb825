"""/api/maintenance: ad hoc windows shared by replicas through the PostgreSQL state store, ended
early with DELETE; bad requests answered with a 4xx and a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.harness import RunningApp, running_app, settings_for
from tests.polling import eventually
from tests.servers import PostgresCluster, refused_port

ADMIN = {"Authorization": "Bearer maintenance-admin-token"}
DETAILS = {"Authorization": "Bearer maintenance-details-token"}
RESTORE = {
    "name": "restore",
    "checks": ["db"],
    "duration": "30m",
    "reason": "Stop writes, restore last night's dump, resume.",
}


def _config(healthy_dsn: str, **extra: Any) -> dict[str, Any]:
    def check(name: str, dsn: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "postgres",
            "criticality": "critical",
            "interval": "1s",
            "timeout": "0.8s",
            "fall": 1,
            "rise": 1,
            "params": {"dsn": dsn},
        }

    refused = f"postgresql://postgres@127.0.0.1:{refused_port()}/postgres"
    return {"checks": [check("db", refused), check("primary", healthy_dsn)], **extra}


def _settings(tmp_path: Path, **overrides: Any) -> Any:
    return settings_for(
        tmp_path,
        admin_token="maintenance-admin-token",
        details_token="maintenance-details-token",
        maintenance_refresh=0.5,
        **overrides,
    )


async def _health(running: RunningApp) -> tuple[int, str]:
    response = await running.client.get("/health")
    return response.status_code, response.json()["status"]


async def test_a_window_posted_on_one_replica_is_honoured_by_another_and_ends_early(
    pg: PostgresCluster, tmp_path: Path
) -> None:
    """POST on A: A is 200 at once, B within its refresh; DELETE on A: 503 again on both."""
    pg.psql("DROP DATABASE IF EXISTS maintenance_state")
    pg.psql("CREATE DATABASE maintenance_state")
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/maintenance_state"
    config = _config(pg.dsn)
    settings_a = _settings(tmp_path / "a", state_url=url, migrate_on_start=True, service_id="a")
    settings_b = _settings(tmp_path / "b", state_url=url, migrate_on_start=True, service_id="b")
    async with running_app(config, settings_a) as a, running_app(config, settings_b) as b:
        await a.wait_ready()
        await b.wait_ready()
        assert await _health(a) == (503, "fail")
        assert await _health(b) == (503, "fail")

        created = await a.client.post("/api/maintenance", json=RESTORE, headers=ADMIN)
        assert created.status_code == 201, created.text
        window = created.json()
        assert (window["name"], window["checks"], window["active"]) == ("restore", ["db"], True)
        assert window["duration_seconds"] == 1800
        # The replica that took the request applies it before answering anything else.
        assert await _health(a) == (200, "warn")

        async def b_is_in_maintenance() -> bool:
            return await _health(b) == (200, "warn")

        await eventually(b_is_in_maintenance, 10)
        entry = (await b.client.get("/health/db", headers=DETAILS)).json()["checks"]["db"][0]
        assert entry["output"].startswith("in maintenance window restore until ")
        checks = {c["name"]: c for c in (await b.client.get("/api/checks")).json()["checks"]}
        assert checks["db"]["maintenance"]["name"] == "restore"
        assert checks["db"]["maintenance"]["until"] == window["end"]
        assert checks["primary"]["maintenance"] is None
        listed = (await b.client.get("/api/maintenance")).json()["windows"]
        assert [(w["name"], w["source"], w["active"]) for w in listed] == [("restore", "api", True)]
        metrics = (await b.client.get("/metrics")).text
        assert 'drwatch_maintenance_active{check="db"} 1.0' in metrics
        assert 'drwatch_maintenance_active{check="primary"} 0.0' in metrics
        assert (
            'drwatch_maintenance_window_info{failover="false",name="restore",source="api"} 1.0'
            in metrics
        )

        ended = await a.client.delete("/api/maintenance/restore", headers=ADMIN)
        assert ended.status_code == 200, ended.text
        assert ended.json()["active"] is False
        assert await _health(a) == (503, "fail")

        async def b_fails_again() -> bool:
            return await _health(b) == (503, "fail")

        await eventually(b_fails_again, 10)
        assert (await b.client.get("/api/maintenance")).json()["windows"] == []
    # The window is kept, ended, for the SLO of the period.
    rows = pg.psql(
        "SELECT count(*) FROM maintenance_windows WHERE ends_at < now()", "maintenance_state"
    )
    assert rows == "1"


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        ({**RESTORE, "checks": ["db", "cache-*"]}, "body.checks.1", "matches no configured check"),
        ({**RESTORE, "end": "2099-01-01T00:00:00Z"}, "body.duration", "not both"),
        ({k: v for k, v in RESTORE.items() if k != "duration"}, "body.duration", "either"),
        ({**RESTORE, "duration": None, "end": "2020-01-01T00:00:00Z"}, "body.end", "future"),
        ({**RESTORE, "duration": "8d"}, "body.duration", "at most 7d"),
        ({**RESTORE, "duration": "soon"}, "body.duration", "not a duration"),
        ({**RESTORE, "name": "no spaces please"}, "body.name", "pattern"),
        ({**RESTORE, "reason": ""}, "body.reason", "at least 1 character"),
    ],
)
async def test_a_bad_window_request_is_a_422_naming_the_field(
    pg: PostgresCluster, tmp_path: Path, body: dict[str, Any], where: str, message: str
) -> None:
    """Each mistake in a POST is a 422 naming its field, never a 500."""
    async with running_app(_config(pg.dsn), _settings(tmp_path), run_scheduler=False) as running:
        response = await running.client.post("/api/maintenance", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    errors = {e["loc"]: e["message"] for e in response.json()["errors"]}
    assert where in errors, errors
    assert message in errors[where]


async def test_admin_token_conflicts_and_unknown_names(pg: PostgresCluster, tmp_path: Path) -> None:
    """401 without a token, 403 with a wrong one, 409 for an open or configured name, 404 for
    ending a window that is not open."""
    configured = {
        "name": "weekly-patch",
        "cron": "0 3 * * 0",
        "duration": "2h",
        "timezone": "Europe/Rome",
        "reason": "OS patches",
    }
    config = _config(pg.dsn, maintenance=[configured])
    async with running_app(config, _settings(tmp_path), run_scheduler=False) as running:
        client = running.client
        assert (await client.post("/api/maintenance", json=RESTORE)).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (
            await client.post("/api/maintenance", json=RESTORE, headers=wrong)
        ).status_code == 403
        assert (await client.delete("/api/maintenance/restore")).status_code == 401
        assert (
            await client.post("/api/maintenance", json=RESTORE, headers=ADMIN)
        ).status_code == 201
        again = await client.post("/api/maintenance", json=RESTORE, headers=ADMIN)
        assert again.status_code == 409
        assert "already open" in again.json()["detail"]
        clash = await client.post(
            "/api/maintenance", json={**RESTORE, "name": "weekly-patch"}, headers=ADMIN
        )
        assert clash.status_code == 409
        ending = await client.delete("/api/maintenance/weekly-patch", headers=ADMIN)
        assert ending.status_code == 409
        assert "configured" in ending.json()["detail"]
        unknown = await client.delete("/api/maintenance/nothing-open", headers=ADMIN)
        assert unknown.status_code == 404
        assert unknown.json()["detail"] == "No open ad hoc maintenance window named 'nothing-open'."
        assert (await client.delete("/api/maintenance/restore", headers=ADMIN)).status_code == 200
        # Ended: the name can be used again.
        assert (
            await client.post("/api/maintenance", json=RESTORE, headers=ADMIN)
        ).status_code == 201


async def test_the_listing_shows_a_weekly_window_once_and_a_daily_one_each_day(
    pg: PostgresCluster, tmp_path: Path
) -> None:
    """GET /api/maintenance: every occurrence open now or opening in the next 7 days, by start."""
    windows = [
        {
            "name": "weekly",
            "cron": "0 3 * * 0",
            "duration": "2h",
            "timezone": "Europe/Rome",
            "checks": ["db"],
            "reason": "OS patches",
        },
        {"name": "daily", "cron": "30 4 * * *", "duration": "10m", "reason": "vacuum"},
        {
            "name": "past",
            "start": "2020-01-01T00:00:00Z",
            "end": "2020-01-01T01:00:00Z",
            "reason": "long ago",
        },
    ]
    config = _config(pg.dsn, maintenance=windows)
    async with running_app(config, _settings(tmp_path), run_scheduler=False) as running:
        now = datetime.now(UTC)
        body = (await running.client.get("/api/maintenance")).json()
    listed = body["windows"]
    assert [w["name"] for w in listed].count("weekly") == 1
    assert [w["name"] for w in listed].count("daily") in (7, 8)
    assert "past" not in {w["name"] for w in listed}
    starts = [w["start"] for w in listed]
    assert starts == sorted(starts)
    weekly = next(w for w in listed if w["name"] == "weekly")
    assert weekly["timezone"] == "Europe/Rome" and weekly["checks"] == ["db"]
    opens = datetime.fromisoformat(weekly["start"])
    assert opens.astimezone(UTC).weekday() == 6 and opens < now + timedelta(days=7)
