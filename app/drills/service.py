"""The drills of one drwatch process as the service sees them: started by cron jobs, the API or
the CLI, the last report of each kept for metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import redact
from app.drills.lease import LEASE_TTL, DrillStore, interrupted, lease_name, run_drill_with_lease
from app.drills.report import DrillReport
from app.drills.run import BackupRef, S3ClientFactory
from app.drills.spec import DrillSpec
from app.errors import DrillBusy, UnknownDrill
from app.units import parse_timestamp

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
                f"The backup source {spec.source!r} has not reported a backup yet (its check "
                "has no result); run the drill again once it has."
            )
        skipped: tuple[str, ...] = ()
        if details.get("verified") is False:
            # The newest backup is broken; restore the newest one that passed verification,
            # which is what the source reports at ``location`` (and say what was passed over).
            if details.get("location_verified") is not True:
                raise ValueError(
                    f"The newest backup of {spec.source!r} failed verification and no older "
                    "one passed it; fix the backup before drilling a restore of it."
                )
            skipped = tuple(_skipped(details))
        try:
            return replace(BackupRef.from_details(details), skipped=skipped)
        except ValueError as exc:
            raise ValueError(f"The backup source {spec.source!r}: {exc}.") from None

    return resolve


def _skipped(details: Mapping[str, Any]) -> list[str]:
    """The source's broken backups newer than the one at ``location``, as "name: why"."""
    found = []
    for bad in details.get("newer_bad_files") or ():
        if isinstance(bad, Mapping):
            name = str(bad.get("path", "")).rsplit("/", 1)[-1]
            found.append(f"{name}: {bad.get('problem')}")
    return found


class DrillService:
    """The configured drills of one drwatch process: started by cron jobs, the API or the CLI.

    Each run takes the drill's lease in the state store first, so across replicas sharing a
    PostgreSQL store a drill runs once at a time; a scheduled run also claims its slot (drill
    name + scheduled time, unique in the store), so a slot runs once even when a replica pauses
    past it. Every run is recorded before it starts and ends as ``pass`` or ``fail`` with a
    message, whatever happens to it.

    It holds the newest run and the newest passing run of every drill: its own, as they finish,
    and everyone's (other replicas, ``drwatch drill run``) as the history cache reads them from
    the store (:meth:`apply_history`), so ``/api/backup-status`` and the metrics answer without
    store I/O. ``ensure_source`` runs a drill's source check when it has no result yet (a drill
    started right after start-up). ``pg_bin`` is the directory of the PostgreSQL client programs
    (None: the newest installed version, or PATH).
    """

    def __init__(
        self,
        specs: Iterable[DrillSpec],
        store: DrillStore,
        owner: str,
        backup_for: BackupResolver,
        *,
        ensure_source: Callable[[str], Awaitable[None]] | None = None,
        s3_client_factory: S3ClientFactory | None = None,
        lease_ttl: float = LEASE_TTL,
        pg_bin: Path | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.store = store
        self.owner = owner
        self.backup_for = backup_for
        self.ensure_source = ensure_source
        self.s3_client_factory = s3_client_factory
        self.lease_ttl = lease_ttl
        self.pg_bin = pg_bin
        self.work_dir = work_dir
        self.running: dict[str, str] = {}
        self.runs_total: dict[tuple[str, str], int] = {}
        # Report dicts (DrillReport.as_dict()) of the newest finished and newest passing run.
        self.last_runs: dict[str, dict[str, Any]] = {}
        self.last_successes: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[DrillReport | None]] = set()

    async def load_history(self) -> None:
        """Read each drill's newest run and newest success from the store once (the one-shot
        commands; the service refreshes through the history cache). Store down: keep what is
        known.
        """
        for name in self.specs:
            try:
                last = await self.store.last_drill_run(name)
                success = await self.store.last_successful_drill_run(name)
            except Exception:
                return
            self.apply_history(name, last, success)

    def apply_history(
        self, name: str, last: dict[str, Any] | None, success: dict[str, Any] | None
    ) -> None:
        """Take the store's newest run and newest success of drill ``name`` where they are newer
        than what this process knows."""
        if last is not None and last.get("report"):
            _keep_newer(self.last_runs, name, last["report"])
        if success is not None and success.get("report"):
            _keep_newer(self.last_successes, name, success["report"])

    def _note(self, report: DrillReport) -> None:
        data = report.as_dict()
        self.last_runs[report.drill] = data
        if report.passed:
            self.last_successes[report.drill] = data
        key = (report.drill, report.status)
        self.runs_total[key] = self.runs_total.get(key, 0) + 1

    def metric_rows(self) -> list[dict[str, Any]]:
        """Per drill: RTO, the last success and duration, runs by result (for /metrics)."""
        rows = []
        for name, spec in self.specs.items():
            last = self.last_runs.get(name)
            success = self.last_successes.get(name)
            # The duration of the newest run that got as far as restoring: a run that found no
            # backup, or was cancelled before it began, took no time worth comparing with the RTO.
            timed = last if last and last.get("restore_seconds") is not None else success
            rows.append(
                {
                    "name": name,
                    "rto_seconds": spec.rto,
                    # Never restored counts as restored at the epoch: a drill that has never
                    # passed is overdue, and the overdue alert must be able to say so.
                    "last_success_at": (success or {}).get("finished_at") or 0.0,
                    "last_duration_seconds": (timed or {}).get("total_seconds"),
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
            success = metrics_row["last_success_at"]
            rows.append(
                {
                    "name": name,
                    "source": spec.source,
                    "schedule": spec.schedule,
                    "rto_seconds": spec.rto,
                    "running": name in self.running,
                    "last_success_at": success if success else None,
                    "last_run": self.last_runs.get(name),
                }
            )
        return rows

    def spec(self, name: str) -> DrillSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise UnknownDrill(name) from None

    async def start(self, name: str) -> str:
        """Start a drill in the background and return its run id (recorded before this returns,
        so the history shows the run as soon as it is accepted).

        Raises UnknownDrill, or DrillBusy when it runs already (here or on another replica).
        """
        spec = self.spec(name)
        if name in self.running:
            raise DrillBusy(name)
        run_id = uuid.uuid4().hex
        if not await self._claim(name, run_id, None):
            raise DrillBusy(name)
        task = asyncio.ensure_future(self._run(spec, run_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run_id

    async def run(
        self,
        name: str,
        *,
        slot: datetime | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> DrillReport | None:
        """Run a drill in the foreground (cron job with its ``slot``, ``drwatch drill run``).

        Returns None when it runs already elsewhere, or the slot ran (or runs) on another
        replica. Raises UnknownDrill.
        """
        spec = self.spec(name)
        if name in self.running:
            return None
        run_id = uuid.uuid4().hex
        if not await self._claim(name, run_id, slot):
            return None
        return await self._run(spec, run_id, progress=progress)

    async def _claim(self, name: str, run_id: str, slot: datetime | None) -> bool:
        """Take the drill's lease and record the run (claiming ``slot`` when given); False when
        the lease is held elsewhere or the slot was claimed already. On True, ``running[name]``
        and the lease are the caller's, and :meth:`_run` gives them back.
        """
        # Marked running before the first await, so two requests here cannot both pass.
        self.running[name] = run_id
        lease = lease_name(name)
        acquired = claimed = False
        try:
            acquired = await self.store.try_acquire_lease(lease, self.owner, self.lease_ttl)
            if acquired:
                now = datetime.now(UTC)
                if slot is None:
                    await self.store.start_drill_run(run_id, name, now, self.owner)
                    claimed = True
                else:
                    claimed = await self.store.claim_drill_slot(run_id, name, slot, now, self.owner)
                    if not claimed:
                        log.info(
                            "this drill slot ran on another replica already; skipped",
                            extra={"drill": name, "slot": slot.isoformat()},
                        )
            return claimed
        finally:
            if not claimed:
                del self.running[name]
                if acquired:
                    with contextlib.suppress(Exception):
                        await self.store.release_lease(lease, self.owner)

    async def _run(
        self,
        spec: DrillSpec,
        run_id: str,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> DrillReport:
        """Run a claimed drill (lease held, run recorded) to its report, which always reaches
        the store: a drill that cannot start or crashes ends as ``fail`` with a message."""
        backup: BackupRef | None = None
        restoring = False
        try:
            try:
                if self.ensure_source is not None:
                    await self.ensure_source(spec.source)
                backup = self.backup_for(spec)
            except ValueError as exc:
                report = await self._finish(spec, run_id, redact.scrub(str(exc)))
            else:
                restoring = True  # from here on, run_drill_with_lease reports a cancellation
                finished = await run_drill_with_lease(
                    self.store,
                    spec,
                    backup,
                    self.owner,
                    progress=progress,
                    s3_client_factory=self.s3_client_factory,
                    run_id=run_id,
                    lease_held=True,
                    run_recorded=True,
                    lease_ttl=self.lease_ttl,
                    pg_bin=self.pg_bin,
                    work_dir=self.work_dir,
                )
                assert finished is not None  # with the lease held, it always runs
                report = finished
        except asyncio.CancelledError:
            if not restoring:
                message = (
                    "The drill was cancelled before it started (drwatch stopped); it runs again "
                    "at its next scheduled time."
                )
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._finish(spec, run_id, message, backup))
            raise
        except Exception as exc:
            log.exception("restore drill crashed", extra={"drill": spec.name})
            message = redact.scrub(
                f"The drill stopped on an unexpected error ({type(exc).__name__}: {exc}); "
                "drwatch's log has the details."
            )
            report = await self._finish(spec, run_id, message, backup)
        finally:
            if self.running.get(spec.name) == run_id:
                del self.running[spec.name]
        self._note(report)
        return report

    async def _finish(
        self, spec: DrillSpec, run_id: str, message: str, backup: BackupRef | None = None
    ) -> DrillReport:
        """Record a run that ended before restoring anything as ``fail`` with ``message``."""
        report = interrupted(run_id, spec, backup or BackupRef("", datetime.now(UTC)), message)
        try:
            await self.store.finish_drill_run(run_id, report.as_dict())
        except Exception:
            log.warning("could not record the drill report", exc_info=True)
        finally:
            with contextlib.suppress(Exception):
                await self.store.release_lease(lease_name(spec.name), self.owner)
        return report

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


def _keep_newer(known: dict[str, dict[str, Any]], name: str, report: dict[str, Any]) -> None:
    """Store ``report`` under ``name`` unless the one there finished later."""
    current = known.get(name)
    if current is None or _finished(report) >= _finished(current):
        known[name] = report


def _finished(report: dict[str, Any]) -> float:
    moment = parse_timestamp(report.get("finished_at")) or parse_timestamp(report.get("started_at"))
    return moment.timestamp() if moment else 0.0
