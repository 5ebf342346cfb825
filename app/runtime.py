"""The running service's parts, built and disposed of together by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from prometheus_client import CollectorRegistry

from app.checks._shared import SharedResources
from app.checks.base import Check, CheckContext
from app.config import Config
from app.drills.service import DrillService, backup_from_results
from app.engine import Engine
from app.history.cache import HistoryCache
from app.history.maintenance import MaintenanceSchedule
from app.history.timeline import COVERAGE_EXTEND_INTERVAL
from app.metrics import Exposition, MetricSources, build_registry
from app.monitor import Monitor, Snapshot
from app.readiness import dr_readiness, drill_runs
from app.scheduler import Scheduler, add_cron_job
from app.settings import Settings
from app.store.db import upgrade
from app.store.repository import (
    CoverageSpan,
    RecoveryPoint,
    Store,
    Transition,
    VerdictTransition,
)
from app.store.writer import StoreWriter

log = logging.getLogger("drwatch")

RETENTION_INTERVAL = 3600.0
RETENTION_LEASE = "retention"


def drwatch_version() -> str:
    try:
        return package_version("drwatch")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0+unknown"


@dataclass
class Runtime:
    settings: Settings
    config: Config
    store: Store
    writer: StoreWriter
    monitor: Monitor
    checks: dict[str, Check[Any]]
    scheduler: Scheduler
    registry: CollectorRegistry
    exposition: Exposition
    version: str
    drills: DrillService
    resources: SharedResources
    history: HistoryCache
    maintenance: MaintenanceSchedule
    serve: bool = True
    started_at: float = field(default_factory=time.time)
    # This process's coverage span: created at start, extended every minute, closed at stop.
    coverage_span: CoverageSpan | None = None
    # Work started on behalf of a request (a heartbeat ping evaluates its check at once), kept
    # so stop() can cancel what is still running instead of leaving it to a closed loop.
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    def build(cls, settings: Settings, config: Config, *, serve: bool = True) -> Runtime:
        """Wire every part. ``serve=False`` (the one-shot commands) records no transitions and
        schedules no drills: the checks run when :meth:`run_checks` asks.
        """
        version = drwatch_version()
        store = Store.from_url(settings.state_url, settings.service_id)
        writer = StoreWriter(retry_max=settings.store_retry_max)
        resources = SharedResources(max_in_flight=settings.max_in_flight)
        context = CheckContext(store=store, service_id=settings.service_id, resources=resources)
        checks = {c.name: c.build(context) for c in config.checks}

        def on_transition(transition: Transition) -> None:
            writer.submit("transition", lambda: store.record_transitions([transition]))

        maintenance = MaintenanceSchedule(
            config.maintenance,
            ((c.name, c.criticality) for c in config.checks),
            refresh_interval=settings.maintenance_refresh,
        )

        def on_verdict(verdict: VerdictTransition) -> None:
            writer.submit("verdict", lambda: store.record_verdict_transitions([verdict]))

        def on_recovery_point(point: RecoveryPoint) -> None:
            writer.submit("recovery point", lambda: store.record_recovery_point(point))

        # The one-shot commands record no history: they are not the service probing.
        monitor = Monitor(
            config.checks,
            service_id=settings.service_id,
            version=version,
            on_transition=on_transition if serve else None,
            on_verdict=on_verdict if serve else None,
            on_recovery_point=on_recovery_point if serve else None,
            maintenance=maintenance,
        )
        scheduler = Scheduler(
            monitor,
            checks.values(),
            {c.name: c.interval for c in config.checks},
            engine=Engine(settings.max_in_flight),
        )

        def last_details(name: str) -> Any:
            state = monitor.snapshot.checks.get(name)
            return state.last_result.details if state and state.last_result else None

        async def ensure_source(name: str) -> None:
            # A drill started before its source's first run (right after start-up) runs the
            # source check itself instead of failing for want of a backup.
            state = monitor.snapshot.checks.get(name)
            if state is not None and state.last_result is None:
                await scheduler.run_now(name)

        drills = DrillService(
            config.drills,
            store,
            settings.service_id,
            backup_from_results(last_details),
            ensure_source=ensure_source,
            pg_bin=settings.pg_bin,
            work_dir=settings.drill_work_dir,
        )
        for spec in config.drills if serve else ():

            def add(sched: Any, name: str = spec.name, crontab: str = spec.schedule) -> None:
                async def run(slot: datetime) -> None:
                    await drills.run(name, slot=slot)

                add_cron_job(sched, f"drill:{name}", crontab, run)

            scheduler.extra_jobs.append(add)
        criticality = {c.name: c.criticality for c in config.checks}

        def maintenance_spans(
            check: str | None, start: float, end: float
        ) -> list[tuple[float, float]]:
            spans = maintenance.spans(
                check, datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
            )
            return [(opened.timestamp(), closed.timestamp()) for opened, closed in spans]

        history = HistoryCache(
            store,
            config.slo,
            criticality=criticality.get,
            drills=drills,
            interval=settings.history_refresh,
            maintenance=maintenance_spans,
        )
        metric_sources = MetricSources(
            snapshot=lambda: monitor.snapshot,
            version=version,
            scheduler=scheduler,
            store_writer=writer,
            drills=drills.metric_rows,
            readiness=lambda: dr_readiness(monitor.snapshot, config, drill_runs(drills)),
            history=history.metric_values,
            maintenance=maintenance,
        )
        registry = build_registry(metric_sources)
        return cls(
            settings=settings,
            config=config,
            store=store,
            writer=writer,
            monitor=monitor,
            checks=checks,
            scheduler=scheduler,
            registry=registry,
            exposition=Exposition(registry, metric_sources),
            version=version,
            drills=drills,
            resources=resources,
            history=history,
            serve=serve,
            maintenance=maintenance,
        )

    async def migrate(self) -> None:
        """Apply the store's migrations where settings ask for it; the store may be down."""
        if not self.settings.migrations_on_start:
            return
        try:
            await asyncio.to_thread(upgrade, self.settings.state_url)
        except Exception as exc:
            # Probing and /health do not need the store; history waits until it is back.
            log.error(
                "state store migrations failed; drwatch runs without history until the "
                "store is reachable and migrated (drwatch db upgrade)",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )

    async def start(self, *, run_scheduler: bool = True) -> None:
        await self.migrate()
        self.writer.start()
        if self.serve:
            now = datetime.now(UTC)
            self.coverage_span = CoverageSpan(
                uuid.uuid4().hex, self.settings.service_id, now, now, closed=False
            )
            self._extend_coverage()
            self.history.start()
            self.scheduler.extra_jobs.append(self._add_history_jobs)
        # Ad hoc windows apply before the first verdict; then every replica keeps up with the
        # store in the background (never on a request).
        await self.maintenance.refresh(self.store)
        self.spawn(self.maintenance.keep_fresh(self.store), "maintenance-refresh")
        if run_scheduler:
            self.scheduler.start()
        log.info(
            "drwatch started",
            extra={
                "version": self.version,
                "checks": len(self.checks),
                "config": self.config.source,
                "store": self.store.dialect,
            },
        )

    async def run_checks(self, names: Iterable[str], *, parallel: int = 50) -> Snapshot:
        """Run the named checks once, at most ``parallel`` at a time; the resulting snapshot."""
        limit = asyncio.Semaphore(parallel)

        async def one(name: str) -> None:
            async with limit:
                await self.scheduler.run_now(name)

        await asyncio.gather(*(one(name) for name in names))
        return self.monitor.snapshot

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``work`` in the background until it ends or the runtime stops."""
        task = asyncio.create_task(work, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def _extend_coverage(self, *, closed: bool = False) -> None:
        """Move this process's coverage span to now (a write queued like every other)."""
        if self.coverage_span is None:
            return
        span = CoverageSpan(
            self.coverage_span.span_id,
            self.coverage_span.service_id,
            self.coverage_span.started_at,
            datetime.now(UTC),
            closed=closed,
        )
        self.writer.submit("coverage", lambda: self.store.extend_coverage(span))

    def _add_history_jobs(self, scheduler: Any) -> None:
        """Coverage and retention run on the scheduler: coverage says "drwatch was probing",
        so it must stop being extended when the scheduler stops."""
        from apscheduler.triggers.interval import IntervalTrigger

        async def extend() -> None:
            self._extend_coverage()

        scheduler.add_job(
            extend,
            IntervalTrigger(seconds=COVERAGE_EXTEND_INTERVAL, timezone=UTC),
            id="__drwatch_coverage__",
            max_instances=1,
            coalesce=True,
        )
        scheduler.add_job(
            self.trim_history,
            IntervalTrigger(seconds=RETENTION_INTERVAL, timezone=UTC),
            id="__drwatch_retention__",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC) + timedelta(minutes=5),
        )

    async def trim_history(self) -> int:
        """Delete history past the retention, on one replica at a time (under a lease)."""
        owner = self.settings.service_id
        try:
            if not await self.store.try_acquire_lease(RETENTION_LEASE, owner, 600):
                return 0
            try:
                before = datetime.now(UTC) - timedelta(seconds=self.settings.retention)
                deleted = await self.store.trim_history(before)
            finally:
                with contextlib.suppress(Exception):
                    await self.store.release_lease(RETENTION_LEASE, owner)
        except Exception as exc:
            log.warning(
                "history retention could not run; it retries in an hour",
                extra={"error": f"{type(exc).__name__}"},
            )
            return 0
        if deleted:
            log.info("history past the retention deleted", extra={"rows": deleted})
        return deleted

    async def stop(self) -> None:
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.drills.stop()
        await self.scheduler.stop()
        await self.history.stop()
        # A clean shutdown closes the span: the time until the next start is no data.
        self._extend_coverage(closed=True)
        await self.resources.close()
        await self.writer.stop()
        await self.store.dispose()
