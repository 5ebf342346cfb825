"""Exactly once across replicas: a drill runs under its lease in the state store.

Replicas sharing a PostgreSQL store race for ``drill:<name>``; the winner records the run, keeps
the lease renewed while it restores, and cancels its drill when the lease is lost, so two
processes never restore the same drill at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from app.drills.report import DrillReport
from app.drills.run import BackupRef, S3ClientFactory, run_drill
from app.drills.spec import DrillSpec

log = logging.getLogger("drwatch.drills")


class DrillStore(Protocol):
    """The part of the state store a drill uses (implemented by app.store.repository.Store)."""

    async def try_acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool: ...

    async def renew_lease(self, name: str, owner: str, ttl_seconds: float) -> bool: ...

    async def release_lease(self, name: str, owner: str) -> None: ...

    async def start_drill_run(
        self, run_id: str, drill: str, started_at: datetime, owner: str
    ) -> None: ...

    async def claim_drill_slot(
        self, run_id: str, drill: str, slot: datetime, started_at: datetime, owner: str
    ) -> bool: ...

    async def finish_drill_run(self, run_id: str, report: dict[str, Any]) -> None: ...

    async def last_drill_run(
        self, drill: str, *, finished: bool = True
    ) -> dict[str, Any] | None: ...

    async def last_successful_drill_run(self, drill: str) -> dict[str, Any] | None: ...


LEASE_TTL = 60.0


def lease_name(drill: str) -> str:
    return f"drill:{drill}"


async def run_drill_with_lease(
    store: DrillStore,
    spec: DrillSpec,
    backup: BackupRef,
    owner: str,
    *,
    progress: Callable[[str], None] | None = None,
    s3_client_factory: S3ClientFactory | None = None,
    run_id: str | None = None,
    lease_held: bool = False,
    run_recorded: bool = False,
    lease_ttl: float = LEASE_TTL,
    pg_bin: Path | None = None,
    work_dir: Path | None = None,
) -> DrillReport | None:
    """Run the drill if this process gets its lease; None when another process holds it.

    The run is recorded in the store (start, then the report). The lease is renewed every third
    of its TTL; if it is lost, the drill is cancelled so that two processes never restore at once.
    ``lease_held`` says the caller acquired the lease already (``POST /api/drills/{name}/run``
    does, to answer 409 at once); it is released here either way. ``run_recorded`` says the
    caller recorded the start of ``run_id`` already. ``pg_bin`` and ``work_dir`` are passed on
    to :func:`run_drill`.
    """
    name = lease_name(spec.name)
    if not lease_held and not await store.try_acquire_lease(name, owner, lease_ttl):
        return None
    run_id = run_id or uuid.uuid4().hex
    try:
        if not run_recorded:
            await store.start_drill_run(run_id, spec.name, datetime.now(UTC), owner)
        drill = asyncio.ensure_future(
            run_drill(
                spec,
                backup,
                progress=progress,
                s3_client_factory=s3_client_factory,
                run_id=run_id,
                pg_bin=pg_bin,
                work_dir=work_dir,
            )
        )
        lost = asyncio.Event()

        async def keep_lease() -> None:
            while True:
                await asyncio.sleep(lease_ttl / 3)
                try:
                    renewed = await store.renew_lease(name, owner, lease_ttl)
                except Exception:
                    log.warning("could not renew the drill lease", exc_info=True)
                    continue
                if not renewed:
                    lost.set()
                    drill.cancel()
                    return

        keeper = asyncio.ensure_future(keep_lease())
        try:
            report = await drill
        except asyncio.CancelledError:
            if lost.is_set():
                report = interrupted(
                    run_id,
                    spec,
                    backup,
                    "The drill lost its lease (the state store was unreachable) and was "
                    "cancelled so that no other drwatch process restores at the same time.",
                )
            else:
                # drwatch is shutting down: the run is over, say so in its history.
                drill.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.shield(drill)
                stopped = interrupted(
                    run_id,
                    spec,
                    backup,
                    "The drill was cancelled before it finished (drwatch stopped); it runs "
                    "again at its next scheduled time.",
                )
                with contextlib.suppress(Exception):
                    await asyncio.shield(store.finish_drill_run(run_id, stopped.as_dict()))
                raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        try:
            await store.finish_drill_run(run_id, report.as_dict())
        except Exception:
            # The report still reaches the caller (CLI, metrics); only the history misses it.
            log.warning("could not record the drill report", exc_info=True)
        return report
    finally:
        with contextlib.suppress(Exception):
            await store.release_lease(name, owner)


def interrupted(run_id: str, spec: DrillSpec, backup: BackupRef, message: str) -> DrillReport:
    """The report of a run that ended before it could report itself."""
    now = datetime.now(UTC)
    return DrillReport(
        run_id=run_id,
        drill=spec.name,
        database="",
        started_at=now,
        finished_at=now,
        backup_location=backup.location,
        backup_time=backup.backup_time,
        rto_seconds=spec.rto,
        message=message,
    )
