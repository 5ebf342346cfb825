"""Two drwatch replicas on one PostgreSQL state store race for the same scheduled drill slot:
exactly one runs it, and both answer the same history afterwards."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.drills.test_lease import plain_dump
from tests.harness import running_app, settings_for
from tests.servers import PostgresCluster


async def test_two_replicas_racing_for_a_drill_slot_run_it_once(
    pg: PostgresCluster, tmp_path: Path
) -> None:
    """Both replicas' cron jobs fire for 13:35, one of them late: one run, recorded once, shown
    by both."""
    pg.psql("DROP DATABASE IF EXISTS drwatch_slot_race")
    pg.psql("CREATE DATABASE drwatch_slot_race")
    state_url = f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/drwatch_slot_race"
    dump = plain_dump(tmp_path, "race")
    # Written ten minutes ago: finished, not still being written.
    os.utime(dump, (time.time() - 600, time.time() - 600))
    config = {
        "checks": [
            {
                "name": "dumps",
                "type": "backup_files",
                # A hand-written SQL file, not pg_dump output: nothing to verify it by.
                "params": {
                    "path": str(dump.parent),
                    "pattern": dump.name,
                    "rpo": "24h",
                    "verify": False,
                },
            }
        ],
        "drills": [
            {
                "name": "nightly",
                "source": "dumps",
                "target_dsn": pg.dsn,
                "schedule": "35 13 * * *",
                "integrity": [],
            }
        ],
    }
    slot = datetime(2026, 11, 28, 13, 35, tzinfo=UTC)

    def settings(replica: str) -> object:
        return settings_for(
            tmp_path / replica,
            state_url=state_url,
            service_id=replica,
            migrate_on_start=True,
            history_refresh=1,
        )

    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    async with (
        running_app(config, settings("r1")) as one,  # type: ignore[arg-type]
        running_app(config, settings("r2")) as two,  # type: ignore[arg-type]
    ):
        await one.wait_ready(60)
        await two.wait_ready(60)
        reports = await asyncio.gather(
            one.runtime.drills.run("nightly", slot=slot),
            two.runtime.drills.run("nightly", slot=slot),
        )
        ran = [report for report in reports if report is not None]
        assert len(ran) == 1, reports
        assert ran[0].status == "pass", ran[0].message
        # The replica that lost comes back to the same slot once the lease is free again (it
        # was paused past it): the slot is taken, so it does not run a second time.
        loser = two if reports[0] is not None else one
        assert await loser.runtime.drills.run("nightly", slot=slot) is None
        answers = [
            (await app.client.get("/api/drills/nightly/runs")).json()["runs"] for app in (one, two)
        ]
    assert answers[0] == answers[1]
    assert [run["run_id"] for run in answers[0]] == [ran[0].run_id]
