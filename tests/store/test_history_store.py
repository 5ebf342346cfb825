"""The history tables: migrations create exactly the declared tables, coverage spans, recovery
points from pushes, and retention, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from app.store.repository import CoverageSpan, RecoveryPoint, Store, Transition
from app.store.tables import metadata
from tests.harness import running_app, settings_for

TOKEN = "hb-token-0123456789"


async def test_the_migrations_create_exactly_the_declared_tables(state_url: str) -> None:
    """alembic upgrade head leaves no difference between the database and app/store/tables.py."""
    store = Store.from_url(state_url)

    def differences(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    try:
        async with store.engine.connect() as conn:
            diff = await conn.run_sync(differences)
    finally:
        await store.dispose()
    assert diff == []


async def test_a_push_records_its_backup_as_a_recovery_point_once(tmp_path: Path) -> None:
    """A heartbeat ping's backup is a recovery point, kept from its first sighting; the newest
    shows in /metrics as drwatch_recovery_point_timestamp_seconds."""
    document = {
        "checks": [
            {
                "name": "nightly-job",
                "type": "heartbeat",
                "params": {"token": TOKEN, "period": "24h", "grace": "1h"},
            }
        ]
    }
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running_app(document, settings_for(tmp_path)) as running:
        await running.wait_ready()
        ping = await running.client.post(
            "/api/backups/nightly-job/ping", headers=auth, json={"size_bytes": 4096}
        )
        assert ping.status_code == 200, ping.text
        runtime = running.runtime
        await running.wait_until(lambda: runtime.monitor.state("nightly-job").consecutive_ok >= 1)
        await runtime.scheduler.run_now("nightly-job")  # the same backup, seen again
        await runtime.writer.flush()
        points = await runtime.store.newest_recovery_points()
        assert await runtime.history.refresh()
        metrics = (await running.client.get("/metrics")).text
    point = points["nightly-job"]
    assert point.size_bytes == 4096
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith('drwatch_recovery_point_timestamp_seconds{source="nightly-job"}')
    )
    assert float(line.split()[-1]) == point.backup_at.timestamp()


async def test_a_running_drwatch_covers_its_time_and_closes_its_span_on_stop(
    tmp_path: Path,
) -> None:
    """Start-up opens a coverage span, a clean stop closes it where it stopped."""
    settings = settings_for(tmp_path, service_id="r1")
    before = datetime.now(UTC)
    async with running_app({"checks": []}, settings) as running:
        store = Store.from_url(settings.state_url, "r1")
    try:
        rows = await store.history(before - timedelta(days=1))
    finally:
        await store.dispose()
    (span,) = rows.coverage
    assert span.service_id == "r1"
    assert span.closed is True
    assert before <= span.started_at <= span.ended_at <= datetime.now(UTC)
    assert running.runtime.coverage_span is not None
    assert span.span_id == running.runtime.coverage_span.span_id


async def test_retention_deletes_only_history_older_than_it(state_url: str) -> None:
    """Rows older than the cutoff go; newer ones, and a span still running, stay."""
    store = Store.from_url(state_url, "r1")
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=500), now - timedelta(days=1)
    try:
        await store.record_transitions(
            [
                Transition("db", None, "pass", old, "ok"),
                Transition("db", "pass", "fail", recent, "x"),
            ]
        )
        await store.extend_coverage(CoverageSpan("old", "r1", old, old, True))
        await store.extend_coverage(CoverageSpan("now", "r1", recent, now, False))
        for moment in (old, recent):
            await store.record_recovery_point(RecoveryPoint("dumps", moment, moment))
        deleted = await store.trim_history(now - timedelta(days=400))
        rows = await store.history(now - timedelta(days=1000))
        points = await store.newest_recovery_points()
    finally:
        await store.dispose()
    assert deleted == 3
    assert [row[4] for row in rows.check_transitions] == [recent]
    assert [span.span_id for span in rows.coverage] == ["now"]
    assert points["dumps"].backup_at == recent
