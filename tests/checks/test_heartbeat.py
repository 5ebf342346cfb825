"""The heartbeat check reading pings from a real (SQLite, migrated) state store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.checks.base import CheckContext, Result, Status
from app.checks.heartbeat import HeartbeatCheck
from app.store.db import upgrade
from app.store.repository import HeartbeatEvent, Store
from tests.checks.backup_contract import BACKUP_KEYS
from tests.fakes.runs import assert_failed, assert_secret_absent, run_once
from tests.servers import black_hole

TOKEN = "hb-token-4f2a9c7e1b3d5f60"


@pytest.fixture(scope="module")
async def store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Store]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('state')}/state.db"
    await asyncio.to_thread(upgrade, url)
    state = Store.from_url(url)
    yield state
    await state.dispose()


@pytest.fixture
def source() -> str:
    return f"nightly-{uuid.uuid4().hex[:8]}"


def ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


async def ping(store: Store, source: str, kind: str, hours_ago: float, **fields: Any) -> None:
    await store.record_heartbeat_event(HeartbeatEvent(source, kind, ago(hours_ago), **fields))


def check(store: Store | None, source: str, **params: Any) -> HeartbeatCheck:
    return HeartbeatCheck(
        source,
        HeartbeatCheck.Params(token=TOKEN, **params),
        timeout=5,
        context=CheckContext(store=store),
    )


async def run(probe: HeartbeatCheck) -> Result:
    result = await run_once(probe)
    assert set(result.details) >= BACKUP_KEYS, result.details
    assert_secret_absent(result, TOKEN)
    return result


async def test_it_passes_after_a_recent_successful_ping(store: Store, source: str) -> None:
    """A success two hours ago is within a daily period; what the job sent is reported."""
    await ping(store, source, "start", 2.5)
    await ping(
        store,
        source,
        "success",
        2,
        size_bytes=52_000_000,
        location="s3://backups/nightly.dump",
        checksum="sha256:ab12",
    )
    result = await run(check(store, source))
    assert result.status is Status.PASS, result.output
    details = result.details
    assert details["size_bytes"] == 52_000_000
    assert details["location"] == "s3://backups/nightly.dump"
    assert details["checksum"] == "sha256:ab12"
    assert details["rpo_seconds"] == 25 * 3600
    assert details["within_rpo"] is True
    assert 1790 < details["duration_seconds"] < 1810  # from the start ping
    assert 2 * 3600 - 10 < details["age_seconds"] < 2 * 3600 + 60


async def test_it_fails_when_no_success_came_within_period_and_grace(
    store: Store, source: str
) -> None:
    """26 hours without a success is past 24 h + 1 h grace."""
    await ping(store, source, "success", 26)
    result = await run(check(store, source))
    assert_failed(result, "past the 1d1h RPO")
    assert result.details["within_rpo"] is False


async def test_it_fails_when_the_job_never_pinged(store: Store, source: str) -> None:
    """A source that has never reported success is not a backup."""
    result = await run(check(store, source))
    assert_failed(result, "No successful ping")
    assert result.details["last_backup_at"] is None


async def test_it_fails_with_the_jobs_message_when_it_reported_failure(
    store: Store, source: str
) -> None:
    """A failure newer than the last success fails and says what the job said."""
    await ping(store, source, "success", 20)
    await ping(store, source, "start", 1)
    await ping(store, source, "fail", 0.9, message="pg_dump: error: connection refused")
    result = await run(check(store, source))
    assert_failed(result, "reported failure", "connection refused")
    assert result.details["verified"] is False
    assert result.details["within_rpo"] is True
    assert result.details["bad_files"][0]["problem"] == "pg_dump: error: connection refused"


async def test_it_fails_when_a_run_outlives_max_runtime(store: Store, source: str) -> None:
    """A start five hours ago with no end is a hung or dead job under a 4 h max_runtime."""
    await ping(store, source, "success", 20)
    await ping(store, source, "start", 5)
    result = await run(check(store, source))
    assert_failed(result, "has not finished within max_runtime 4h")
    assert result.details["running_since"] is not None


async def test_it_passes_while_a_run_is_within_max_runtime(store: Store, source: str) -> None:
    """A run that started ten minutes ago is simply in progress."""
    await ping(store, source, "success", 20)
    await ping(store, source, "start", 1 / 6)
    result = await run(check(store, source))
    assert result.status is Status.PASS, result.output
    assert "in progress" in result.output


async def test_it_warns_when_the_backup_is_suspiciously_small(store: Store, source: str) -> None:
    """A dump a tenth the median size of the previous runs succeeds but is suspicious."""
    for day in (4, 3, 2):
        await ping(store, source, "success", 24 * day, size_bytes=50_000_000)
    await ping(store, source, "success", 1, size_bytes=5_000_000)
    result = await run(check(store, source))
    assert result.status is Status.WARN, result.output
    assert "suspiciously small" in result.output
    assert result.details["typical_size_bytes"] == 50_000_000


async def test_it_warns_when_the_backup_is_suspiciously_fast(store: Store, source: str) -> None:
    """A run far shorter than the median (measured from its start ping) is suspicious."""
    for day in (4, 3, 2):
        await ping(store, source, "start", 24 * day + 1)
        await ping(store, source, "success", 24 * day)
    await ping(store, source, "start", 1.02)
    await ping(store, source, "success", 1)
    result = await run(check(store, source))
    assert result.status is Status.WARN, result.output
    assert "suspiciously fast" in result.output


async def test_it_does_not_judge_plausibility_without_enough_history(
    store: Store, source: str
) -> None:
    """Two earlier runs are too few for a median; a small third run passes."""
    for day in (3, 2):
        await ping(store, source, "success", 24 * day, size_bytes=50_000_000)
    await ping(store, source, "success", 1, size_bytes=5_000_000)
    result = await run(check(store, source))
    assert result.status is Status.PASS, result.output


async def test_it_fails_permanently_without_a_state_store(source: str) -> None:
    """Outside the service there is nowhere to read pings from."""
    result = await run(check(None, source))
    assert_failed(result, "state store", permanent=True)


async def test_it_fails_but_retries_when_the_store_cannot_be_read(
    tmp_path: Path, source: str
) -> None:
    """An unreadable store is a transient failure, not a missed backup."""
    broken = Store.from_url(f"sqlite+aiosqlite:///{tmp_path}/missing-dir/state.db")
    try:
        result = await run(check(broken, source))
    finally:
        await broken.dispose()
    assert_failed(result, "state store cannot be read", permanent=False)
    assert result.details["rpo_seconds"] == 25 * 3600


async def test_a_hung_store_is_named_as_the_cause(source: str) -> None:
    """A state store that accepts connections and never answers: the check fails inside its
    timeout and says the store is hung, rather than the runner's generic "no answer"."""
    with black_hole() as hole:
        hung = Store.from_url(f"postgresql+asyncpg://postgres@127.0.0.1:{hole.port}/state")
        probe = HeartbeatCheck(
            source,
            HeartbeatCheck.Params(token=TOKEN),
            timeout=1.0,
            context=CheckContext(store=hung),
        )
        try:
            result = await run_once(probe)
        finally:
            await hung.dispose()
    assert_failed(result, "state store did not answer", permanent=False)


async def test_a_ping_to_the_service_survives_a_restart(tmp_path: Path) -> None:
    """A ping acknowledged by one drwatch process is what the next process reports."""
    from tests.harness import running_app, settings_for

    config = {
        "checks": [
            {
                "name": "nightly",
                "type": "heartbeat",
                "interval": "1m",
                "params": {"token": TOKEN, "period": "24h"},
            }
        ]
    }
    settings = settings_for(tmp_path)
    async with running_app(config, settings) as first:
        answer = await first.client.post(
            "/api/backups/nightly/ping",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"size_bytes": 123_456, "location": "/backups/nightly.dump"},
        )
        assert answer.status_code == 200, answer.text
    async with running_app(config, settings) as second:
        await second.wait_ready()
        result = second.runtime.monitor.snapshot.checks["nightly"].last_result
        assert result is not None
        assert result.status is Status.PASS, result.output
        assert result.details["size_bytes"] == 123_456
        answer = await second.client.get("/api/backup-status")
    assert answer.status_code == 200, answer.text
    assert TOKEN not in answer.text
    (source,) = [s for s in answer.json()["sources"] if s["name"] == "nightly"]
    assert source["within_rpo"] is True
    assert source["location"] == "/backups/nightly.dump"


async def test_it_is_not_poisoned_by_impossible_numbers_already_stored(
    store: Store, source: str
) -> None:
    """Infinite, NaN and negative numbers in stored pings are ignored, not an error every run."""
    for hours, duration in ((30, float("inf")), (26, float("-inf")), (22, -5.0), (18, 1e300)):
        await ping(store, source, "success", hours, duration_seconds=duration, size_bytes=-1)
    await ping(store, source, "success", 2, duration_seconds=float("inf"), size_bytes=-7)
    result = await run(check(store, source))
    assert result.status is Status.PASS, result.output
    assert result.details["duration_seconds"] is None
    assert result.details["size_bytes"] is None
