"""Scheduled drill slots run exactly once across replicas, and every accepted run ends as pass or
fail with a message."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.drills.run import BackupRef
from app.drills.service import DrillService
from app.drills.spec import DrillSpec
from app.scheduler import add_cron_job
from app.store.db import upgrade
from app.store.repository import Store
from tests.drills.test_lease import plain_dump
from tests.polling import eventually
from tests.servers import PostgresCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """The shared state store and the drills' scratch target, in one throwaway server."""
    server = PostgresCluster.create(name="drill-slots")
    server.psql("CREATE DATABASE drwatch_state")
    yield server
    server.destroy()


def _service(store: Store, owner: str, target: str, backup: Path) -> DrillService:
    spec = DrillSpec(name="nightly", source="dumps", target_dsn=target, schedule="* * * * *")
    return DrillService(
        [spec], store, owner, lambda _spec: BackupRef(str(backup), datetime.now(UTC))
    )


async def test_a_scheduled_slot_runs_once_even_when_a_replica_comes_late(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    """Racing for a slot, one replica runs it; a replica paused past the slot (the lease free
    again) finds it taken and skips it; the next slot runs."""
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/drwatch_state"
    await asyncio.to_thread(upgrade, url)
    dump = plain_dump(tmp_path, "quick")
    one, two = Store.from_url(url, "r1"), Store.from_url(url, "r2")
    r1 = _service(one, "r1", cluster.dsn, dump)
    r2 = _service(two, "r2", cluster.dsn, dump)
    slot = datetime(2026, 11, 28, 13, 35, tzinfo=UTC)
    try:
        raced = await asyncio.gather(r1.run("nightly", slot=slot), r2.run("nightly", slot=slot))
        assert sorted(r is None for r in raced) == [False, True]
        late = await r2.run("nightly", slot=slot)
        late_too = await r1.run("nightly", slot=slot)
        assert (late, late_too) == (None, None)
        following = await r2.run("nightly", slot=slot + timedelta(minutes=1))
        assert following is not None and following.status == "pass"
        runs = await one.drill_runs("nightly")
    finally:
        await one.dispose()
        await two.dispose()
    assert sorted(run["slot"] for run in runs) == [slot, slot + timedelta(minutes=1)]
    assert all(run["status"] == "pass" for run in runs)


async def test_a_cron_job_is_handed_the_slot_it_was_scheduled_for() -> None:
    """A run that starts late (a paused process) still names its scheduled time as the slot."""
    scheduler = AsyncIOScheduler(timezone=UTC)
    slots: list[datetime] = []

    async def run(slot: datetime) -> None:
        slots.append(slot)

    # Hourly at a minute five minutes ago: the run is that late when the scheduler starts.
    scheduled = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    add_cron_job(scheduler, "drill:nightly", f"{scheduled.minute} * * * *", run)
    scheduler.start()
    try:
        scheduler.modify_job("drill:nightly", next_run_time=scheduled)
        scheduler.wakeup()
        await eventually(lambda: bool(slots), 10)
    finally:
        scheduler.shutdown(wait=False)
    assert slots == [scheduled]


async def test_a_drill_that_crashes_ends_as_fail_with_a_message(tmp_path: Path) -> None:
    """An unexpected error while finding the backup is a failed run saying so, never a run
    left 'running' forever."""
    url = f"sqlite+aiosqlite:///{tmp_path}/state.db"
    await asyncio.to_thread(upgrade, url)
    store = Store.from_url(url)

    def broken(_spec: DrillSpec) -> BackupRef:
        raise RuntimeError("the source's details are not what a drill expects")

    spec = DrillSpec(name="nightly", source="dumps", target_dsn="postgresql://u@scratch/p")
    service = DrillService([spec], store, "r1", broken)
    try:
        run_id = await service.start("nightly")
        await eventually(lambda: not service.running, 10)
        runs = await store.drill_runs("nightly")
    finally:
        await service.stop()
        await store.dispose()
    assert [(run["run_id"], run["status"]) for run in runs] == [(run_id, "fail")]
    assert "RuntimeError" in runs[0]["report"]["message"]
    assert service.metric_rows()[0]["runs"] == {"pass": 0, "fail": 1}
