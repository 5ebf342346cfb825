"""The drills of one drwatch process as the service sees them: started by cron jobs, the API or
the CLI, the last report of each kept for metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import redact
from app.drills.lease import LEASE_TTL, DrillStore, interrupted, lease_name, run_drill_with_lease
from app.drills.report import DrillReport
from app.drills.run import BackupRef, S3ClientFactory
from app.drills.spec import DrillSpec
from app.errors import DrillBusy, UnknownDrill

log = logging.getLogger("drwatch.drills")


BackupResolver = Callable[[DrillSpec], BackupRef]
"""Returns the backup a drill should restore now; raises ValueError when there is none."""


def backup_from_results(
    last_details: Callable[[str], Mapping[str, Any] | None],
) -> BackupResolver:
    """A resolver over the source checks' last Result details (``location``, ``last_backup_at``,
    ``size_bytes``, ``rpo_seconds``, ``verified``), e.g. read from the monitor's snapshot.
    """

    def resolve(spec: DrillSpec) -> BackupRef:
        details = last_details(spec.source)
        if details is None:
            raise ValueError(
                f"The backup source {spec.source!r} has not reported a backup yet; the drill "
                "runs once it has."
            )
        if details.get("verified") is False:
            raise ValueError(
                f"The newest backup of {spec.source!r} failed verification; fix the backup "
                "before drilling a restore of it."
            )
        try:
            return BackupRef.from_details(details)
        except ValueError as exc:
            raise ValueError(f"The backup source {spec.source!r}: {exc}.") from None

    return resolve


class DrillService:
    """The configured drills of one drwatch process: started by cron jobs, the API or the CLI.

    Each run takes the drill's lease in the state store first, so across replicas sharing a
    PostgreSQL store a drill runs once at a time. It is the one owner of drill history in
    memory: ``last_reports`` and ``runs_total`` hold what this process saw, ``stored_successes``
    and ``stored_last_runs`` what the store held when :meth:`load_history` last read it, so
    ``/api/backup-status`` and the metrics answer without store I/O. ``pg_bin`` is the directory
    of the PostgreSQL client programs (None: the newest installed version, or PATH).
    """

    def __init__(
        self,
        specs: Iterable[DrillSpec],
        store: DrillStore,
        owner: str,
        backup_for: BackupResolver,
        *,
        s3_client_factory: S3ClientFactory | None = None,
        lease_ttl: float = LEASE_TTL,
        pg_bin: Path | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.store = store
        self.owner = owner
        self.backup_for = backup_for
        self.s3_client_factory = s3_client_factory
        self.lease_ttl = lease_ttl
        self.pg_bin = pg_bin
        self.work_dir = work_dir
        self.running: dict[str, str] = {}
        self.last_reports: dict[str, DrillReport] = {}
        self.runs_total: dict[tuple[str, str], int] = {}
        self.stored_successes: dict[str, dict[str, Any]] = {}
        self.stored_last_runs: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[DrillReport | None]] = set()

    async def load_history(self) -> None:
        """Read each drill's last run and last success from the store (store down: keep what
        is known; history then starts from this process).
        """
        for name in self.specs:
            try:
                success = await self.store.last_successful_drill_run(name)
                last = await self.store.last_drill_run(name)
            except Exception:
                return
            if success is not None and success.get("report"):
                self.stored_successes[name] = success["report"]
            if last is not None and last.get("report"):
                self.stored_last_runs[name] = last["report"]

    def metric_rows(self) -> list[dict[str, Any]]:
        """Per drill: RTO, the last success and duration, runs by result (for /metrics)."""
        rows = []
        for name, spec in self.specs.items():
            report = self.last_reports.get(name)
            success_at: Any = self.stored_successes.get(name, {}).get("finished_at")
            if report is not None and report.passed:
                success_at = report.finished_at
            last = report.as_dict() if report else self.stored_successes.get(name, {})
            rows.append(
                {
                    "name": name,
                    "rto_seconds": spec.rto,
                    # Never restored counts as restored at the epoch: a drill that has never
                    # passed is overdue, and the overdue alert must be able to say so.
                    "last_success_at": success_at or 0.0,
                    "last_duration_seconds": last.get("total_seconds") if last else None,
                    "runs": {
                        result: self.runs_total.get((name, result), 0)
                        for result in ("pass", "fail")
                    },
                }
            )
        return rows

    def summaries(self) -> list[dict[str, Any]]:
        """Per drill: its schedule and RTO, whether it runs, its last success and last run."""
        rows = []
        for metrics_row in self.metric_rows():
            name = metrics_row["name"]
            spec = self.specs[name]
            report = self.last_reports.get(name)
            last_run = report.as_dict() if report else self.stored_last_runs.get(name)
            success = metrics_row["last_success_at"]
            rows.append(
                {
                    "name": name,
                    "source": spec.source,
                    "schedule": spec.schedule,
                    "rto_seconds": spec.rto,
                    "running": name in self.running,
                    "last_success_at": success if success else None,
                    "last_run": last_run,
                }
            )
        return rows

    def spec(self, name: str) -> DrillSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise UnknownDrill(name) from None

    async def start(self, name: str) -> str:
        """Start a drill in the background and return its run id.

        Raises UnknownDrill, or DrillBusy when it runs already (here or on another replica).
        """
        spec = self.spec(name)
        if name in self.running:
            raise DrillBusy(name)
        run_id = uuid.uuid4().hex
        # Claimed before the first await, so two requests here cannot both pass.
        self.running[name] = run_id
        try:
            acquired = await self.store.try_acquire_lease(
                lease_name(name), self.owner, self.lease_ttl
            )
        except BaseException:
            del self.running[name]
            raise
        if not acquired:
            del self.running[name]
            raise DrillBusy(name)
        try:
            # Recorded before answering, so the history shows the run as soon as it is accepted.
            await self.store.start_drill_run(run_id, name, datetime.now(UTC), self.owner)
        except BaseException:
            del self.running[name]
            with contextlib.suppress(Exception):
                await self.store.release_lease(lease_name(name), self.owner)
            raise
        task = asyncio.ensure_future(self._run(spec, run_id, lease_held=True, run_recorded=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run_id

    async def run(
        self, name: str, *, progress: Callable[[str], None] | None = None
    ) -> DrillReport | None:
        """Run a drill in the foreground (cron job, ``drwatch drill run``).

        Returns None when it runs already elsewhere. Raises UnknownDrill.
        """
        spec = self.spec(name)
        if name in self.running:
            return None
        run_id = uuid.uuid4().hex
        self.running[name] = run_id
        return await self._run(spec, run_id, lease_held=False, progress=progress)

    async def _run(
        self,
        spec: DrillSpec,
        run_id: str,
        *,
        lease_held: bool,
        run_recorded: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> DrillReport | None:
        try:
            try:
                backup = self.backup_for(spec)
            except ValueError as exc:
                report = await self._no_backup(
                    spec, run_id, str(exc), lease_held=lease_held, run_recorded=run_recorded
                )
            else:
                report = await run_drill_with_lease(
                    self.store,
                    spec,
                    backup,
                    self.owner,
                    progress=progress,
                    s3_client_factory=self.s3_client_factory,
                    run_id=run_id,
                    lease_held=lease_held,
                    run_recorded=run_recorded,
                    lease_ttl=self.lease_ttl,
                    pg_bin=self.pg_bin,
                    work_dir=self.work_dir,
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("restore drill crashed", extra={"drill": spec.name})
            return None
        finally:
            if self.running.get(spec.name) == run_id:
                del self.running[spec.name]
        if report is not None:
            self.last_reports[spec.name] = report
            key = (spec.name, report.status)
            self.runs_total[key] = self.runs_total.get(key, 0) + 1
        return report

    async def _no_backup(
        self,
        spec: DrillSpec,
        run_id: str,
        message: str,
        *,
        lease_held: bool,
        run_recorded: bool,
    ) -> DrillReport | None:
        name = lease_name(spec.name)
        if not lease_held and not await self.store.try_acquire_lease(
            name, self.owner, self.lease_ttl
        ):
            return None
        try:
            now = datetime.now(UTC)
            report = DrillReport(
                run_id=run_id,
                drill=spec.name,
                database="",
                started_at=now,
                finished_at=now,
                total_seconds=0.0,
                rto_seconds=spec.rto,
                message=redact.scrub(message),
            )
            if not run_recorded:
                await self.store.start_drill_run(run_id, spec.name, now, self.owner)
            await self.store.finish_drill_run(run_id, report.as_dict())
            return report
        finally:
            with contextlib.suppress(Exception):
                await self.store.release_lease(name, self.owner)

    async def stop(self) -> None:
        """Cancel running drills (each drops its database) and wait for them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # A run cancelled before it began never reached its own clean-up.
        for name, run_id in list(self.running.items()):
            spec = self.specs[name]
            report = interrupted(
                run_id,
                spec,
                BackupRef("", datetime.now(UTC)),
                "The drill was cancelled before it started (drwatch stopped); it runs again "
                "at its next scheduled time.",
            )
            with contextlib.suppress(Exception):
                await self.store.finish_drill_run(run_id, report.as_dict())
            with contextlib.suppress(Exception):
                await self.store.release_lease(lease_name(name), self.owner)
            del self.running[name]
