"""Restore drills run once across processes (leases in a PostgreSQL state store), and the
/api/drills routes that list and start them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import parse_config
from app.drills.run import BackupRef
from app.drills.service import DrillService
from app.drills.spec import DrillSpec
from app.main import create_app
from app.runtime import Runtime
from app.store.db import upgrade
from app.store.repository import Store
from tests.harness import settings_for
from tests.polling import eventually
from tests.servers import PostgresCluster

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "admin-token-for-drills-0042"


@pytest.fixture(scope="module")
def target() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster.create(
        {"client_connection_check_interval": "100ms"}, name="drill-lease"
    )
    yield cluster
    cluster.destroy()


def plain_dump(directory: Path, name: str, *, sleep: float = 0) -> Path:
    """A tiny plain SQL dump; ``sleep`` makes its restore take at least that long."""
    path = directory / f"{name}.sql"
    body = "CREATE TABLE tenants (id int);\nINSERT INTO tenants VALUES (1), (2);\n"
    if sleep:
        body += f"SELECT pg_sleep({sleep});\n"
    path.write_text(body)
    return path


def drill_databases(cluster: PostgresCluster) -> list[str]:
    names = cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE 'drwatch\\_drill\\_%'")
    return [n for n in names.splitlines() if n]


CONTENDER = """
import asyncio, os, sys
from datetime import UTC, datetime
from pathlib import Path
from app.drills.lease import run_drill_with_lease
from app.drills.run import BackupRef
from app.drills.spec import DrillSpec
from app.store.repository import Store

async def main() -> None:
    store = Store.from_url(os.environ["STATE_URL"])
    spec = DrillSpec(name="shared", source="dumps", target_dsn=os.environ["DRILL_TARGET"])
    backup = BackupRef(sys.argv[1], datetime.now(UTC))
    go = Path(sys.argv[2])
    await store.ping()
    print("ready", flush=True)
    while not go.exists():
        await asyncio.sleep(0.002)
    report = await run_drill_with_lease(store, spec, backup, owner=sys.argv[3])
    print("ran " + report.status if report else "skipped", flush=True)
    await store.dispose()

asyncio.run(main())
"""


async def test_two_processes_sharing_a_postgres_store_run_a_drill_exactly_once(
    target: PostgresCluster, tmp_path: Path
) -> None:
    """Both start the same drill at the same moment; one runs it, the other skips."""
    target.psql("DROP DATABASE IF EXISTS drwatch_state")
    target.psql("CREATE DATABASE drwatch_state")
    state_url = f"postgresql+asyncpg://postgres@127.0.0.1:{target.port}/drwatch_state"
    await asyncio.to_thread(upgrade, state_url)
    dump = plain_dump(tmp_path, "slow", sleep=2)
    go = tmp_path / "go"
    env = {**os.environ, "STATE_URL": state_url, "DRILL_TARGET": target.dsn}
    contenders = [
        subprocess.Popen(
            [sys.executable, "-c", CONTENDER, str(dump), str(go), f"replica-{i}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        for proc in contenders:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        go.touch()
        outputs = sorted(proc.communicate(timeout=120)[0].strip() for proc in contenders)
    finally:
        for proc in contenders:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert outputs == ["ran pass", "skipped"]

    store = Store.from_url(state_url)
    try:
        runs = await store.drill_runs("shared", limit=10)
        assert [run["status"] for run in runs] == ["pass"]
        assert runs[0]["owner"] in ("replica-0", "replica-1")
        assert runs[0]["report"]["status"] == "pass"
        assert await store.lease_owner("drill:shared") is None
    finally:
        await store.dispose()
    assert drill_databases(target) == []


# --- the API -----------------------------------------------------------------------------------


class Backups:
    """What the drills' backup source reports, changeable by a test."""

    def __init__(self) -> None:
        self.current: BackupRef | None = None

    def __call__(self, spec: DrillSpec) -> BackupRef:
        if self.current is None:
            raise ValueError(f"The backup source {spec.source!r} has not reported a backup yet.")
        return self.current


@contextlib.asynccontextmanager
async def drill_app(
    target: PostgresCluster, tmp_path: Path, backups: Backups
) -> AsyncIterator[tuple[httpx.AsyncClient, DrillService]]:
    settings = settings_for(tmp_path, admin_token=ADMIN_TOKEN)
    app: FastAPI = create_app(settings, parse_config({"checks": []}), run_scheduler=False)
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        service = DrillService(
            [DrillSpec(name="monthly-restore", source="nightly-dumps", target_dsn=target.dsn)],
            runtime.store,
            "replica-test",
            backups,
        )
        runtime.drills = service
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://drwatch") as client:
                yield client, service
        finally:
            await service.stop()


async def wait_idle(service: DrillService) -> None:
    await eventually(lambda: not service.running, timeout=60)


async def test_starting_a_drill_needs_the_admin_token(
    target: PostgresCluster, tmp_path: Path
) -> None:
    """No token is 401, a wrong one 403; an unknown drill is 404 (after authentication)."""
    async with drill_app(target, tmp_path, Backups()) as (client, service):
        missing = await client.post("/api/drills/monthly-restore/run")
        wrong = await client.post(
            "/api/drills/monthly-restore/run", headers={"Authorization": "Bearer nope"}
        )
        unknown = await client.post(
            "/api/drills/weekly/run", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert (missing.status_code, wrong.status_code, unknown.status_code) == (401, 403, 404)
        assert service.running == {}
        assert (await client.get("/api/drills/weekly/runs")).status_code == 404


async def test_a_started_drill_runs_in_the_background_and_shows_in_its_history(
    target: PostgresCluster, tmp_path: Path
) -> None:
    """POST answers 202 with a run id at once; the finished run is listed with its report."""
    backups = Backups()
    backups.current = BackupRef(str(plain_dump(tmp_path, "quick")), datetime.now(UTC))
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with drill_app(target, tmp_path, backups) as (client, service):
        response = await client.post("/api/drills/monthly-restore/run", headers=auth)
        assert response.status_code == 202
        run_id = response.json()["run_id"]
        await wait_idle(service)

        history = (await client.get("/api/drills/monthly-restore/runs")).json()
        assert history["drill"] == "monthly-restore"
        assert [run["run_id"] for run in history["runs"]] == [run_id]
        run = history["runs"][0]
        assert run["status"] == "pass"
        assert run["report"]["backup_format"] == "plain"
        assert service.last_runs["monthly-restore"]["status"] == "pass"
        assert service.runs_total == {("monthly-restore", "pass"): 1}


async def test_a_drill_that_is_already_running_answers_409(
    target: PostgresCluster, tmp_path: Path
) -> None:
    """A second start while the first restores is refused; stopping drwatch cleans up."""
    backups = Backups()
    backups.current = BackupRef(str(plain_dump(tmp_path, "slow", sleep=60)), datetime.now(UTC))
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with drill_app(target, tmp_path, backups) as (client, service):
        first = await client.post("/api/drills/monthly-restore/run", headers=auth)
        second = await client.post("/api/drills/monthly-restore/run", headers=auth)
        assert (first.status_code, second.status_code) == (202, 409)
        await service.stop()
        history = (await client.get("/api/drills/monthly-restore/runs")).json()
        assert [run["status"] for run in history["runs"]] == ["fail"]
        assert "cancelled" in history["runs"][0]["report"]["message"]
    assert drill_databases(target) == []


async def test_a_drill_without_a_backup_records_a_failed_run(
    target: PostgresCluster, tmp_path: Path
) -> None:
    """When the source has reported no backup, the run fails and says so."""
    async with drill_app(target, tmp_path, Backups()) as (_client, service):
        report = await service.run("monthly-restore")
        assert report is not None
        assert report.status == "fail"
        assert "has not reported a backup" in report.message
        runs = await service.store.drill_runs("monthly-restore", 5)  # type: ignore[attr-defined]
        assert [run["status"] for run in runs] == ["fail"]
