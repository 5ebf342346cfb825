"""The render check against a real HTTP server speaking Render's Postgres recovery/export API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.checks.base import Result, Status
from app.checks.render import RenderCheck
from tests.checks.backup_contract import BACKUP_KEYS
from tests.credentials import fake_secret
from tests.fakes.base import Fault
from tests.fakes.render_api import Database, Export, FakeRender
from tests.fakes.runs import assert_failed, assert_secret_absent, run_once

KEY = fake_secret("rnd_", 32)
SIGNED = "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture(scope="module")
def render() -> Iterator[FakeRender]:
    fake = FakeRender(KEY)
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _clean(render: FakeRender) -> Iterator[None]:
    render.reset()
    render.databases.clear()
    yield
    render.reset()


def ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


def export(export_id: str, hours: float, *, url: bool = True) -> Export:
    link = f"https://exports.render.example/{export_id}.dir.tar.gz{SIGNED}" if url else None
    return Export(export_id, ago(hours), link)


def check(
    render: FakeRender, postgres_id: str = "dpg-shop", *, key: str = KEY, **params: Any
) -> RenderCheck:
    return RenderCheck(
        "render-db",
        RenderCheck.Params(api_key=key, postgres_id=postgres_id, base_url=render.url, **params),
        timeout=5,
    )


async def run(probe: RenderCheck) -> Result:
    result = await run_once(probe)
    assert set(result.details) >= BACKUP_KEYS, result.details
    assert_secret_absent(result, KEY)
    return result


async def test_it_passes_with_recovery_available_and_a_fresh_export(render: FakeRender) -> None:
    """PITR available and an export two hours old pass; the signed URL's query is not shown."""
    render.add(
        Database(
            "dpg-shop",
            starts_at=ago(72),
            exports=[export("exp-old", 26), export("exp-new", 2)],
        )
    )
    result = await run(check(render))
    assert result.status is Status.PASS, result.output
    details = result.details
    assert details["location"] == "https://exports.render.example/exp-new.dir.tar.gz"
    assert details["export_id"] == "exp-new"
    assert 2 * 3600 - 10 < details["age_seconds"] < 2 * 3600 + 60
    assert details["within_rpo"] is True
    assert details["verified"] is True
    assert details["pitr_status"] == "AVAILABLE"
    assert 72 * 3600 - 60 < details["pitr_window_seconds"] < 72 * 3600 + 60
    assert "X-Amz-Signature" not in result.output + str(details)
    paths = [r.path for r in render.requests]
    assert paths == ["/v1/postgres/dpg-shop/recovery", "/v1/postgres/dpg-shop/export"]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in render.requests)


async def test_it_fails_when_the_newest_export_is_older_than_the_rpo(render: FakeRender) -> None:
    """Exports that stopped 30 hours ago are past a 24 h RPO."""
    render.add(Database("dpg-shop", starts_at=ago(72), exports=[export("exp-1", 30)]))
    result = await run(check(render, rpo="24h"))
    assert_failed(result, "older than the 1d RPO")
    assert result.details["within_rpo"] is False


async def test_it_fails_when_there_is_no_export(render: FakeRender) -> None:
    """Point-in-time recovery alone does not survive losing the database."""
    render.add(Database("dpg-shop", starts_at=ago(72)))
    result = await run(check(render))
    assert_failed(result, "no export")
    assert result.details["last_backup_at"] is None


async def test_it_takes_the_newest_finished_export_when_one_is_still_written(
    render: FakeRender,
) -> None:
    """An export without a download URL yet is in progress; the one before gives the age."""
    render.add(
        Database(
            "dpg-shop",
            starts_at=ago(72),
            exports=[export("exp-done", 20), export("exp-running", 0.1, url=False)],
        )
    )
    result = await run(check(render))
    assert result.status is Status.PASS, result.output
    assert result.details["export_id"] == "exp-done"
    assert result.details["in_progress"] == ["exp-running"]


@pytest.mark.parametrize(
    ("status", "words"),
    [("NOT_AVAILABLE", "plan does not include it"), ("BACKUP_NOT_READY", "first backup")],
)
async def test_it_fails_when_point_in_time_recovery_is_not_available(
    render: FakeRender, status: str, words: str
) -> None:
    """A database that cannot be restored to a point in time fails, whatever its exports."""
    render.add(Database("dpg-shop", recovery_status=status, exports=[export("exp-1", 1)]))
    result = await run(check(render))
    assert_failed(result, words)
    assert result.details["pitr_status"] == status
    assert result.details["within_rpo"] is True


async def test_it_uses_point_in_time_recovery_as_the_recovery_point_without_exports(
    render: FakeRender,
) -> None:
    """With exports off, available PITR means the database is recoverable up to now."""
    render.add(Database("dpg-shop", starts_at=ago(24)))
    result = await run(check(render, exports=False))
    assert result.status is Status.PASS, result.output
    assert result.details["age_seconds"] < 5
    assert result.details["verified_by"] == "point-in-time recovery status AVAILABLE"
    assert [r.path for r in render.requests] == ["/v1/postgres/dpg-shop/recovery"]


async def test_it_fails_permanently_on_a_bad_api_key(render: FakeRender) -> None:
    """A rejected key is permanent and never shown."""
    render.add(Database("dpg-shop", starts_at=ago(24)))
    wrong = fake_secret("rnd_", 32)
    result = await run(check(render, key=wrong))
    assert_failed(result, "rejected", permanent=True)
    assert_secret_absent(result, wrong)


async def test_it_fails_permanently_for_an_unknown_database(render: FakeRender) -> None:
    """A wrong postgres id cannot fix itself."""
    result = await run(check(render, "dpg-missing"))
    assert_failed(result, "dpg-missing", permanent=True)
    assert result.details["rpo_seconds"] == 86400


async def test_it_fails_but_retries_when_render_fails_on_its_side(render: FakeRender) -> None:
    """A 5xx from Render is not permanent."""
    render.add(Database("dpg-shop", starts_at=ago(24)))
    render.inject(Fault(status=503))
    result = await run(check(render))
    assert_failed(result, "failing on its side", permanent=False)
