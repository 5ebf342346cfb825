"""The running service's parts, built and disposed of together by the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from prometheus_client import CollectorRegistry

from app.checks._shared import SharedResources
from app.checks.base import Check, CheckContext
from app.config import Config
from app.drills.service import DrillService, backup_from_results
from app.engine import Engine
from app.metrics import Exposition, MetricSources, build_registry
from app.monitor import Monitor, Snapshot
from app.scheduler import Scheduler, add_cron_job
from app.settings import Settings
from app.store.db import upgrade
from app.store.repository import Store, StoreWriter, Transition

log = logging.getLogger("drwatch")


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
    started_at: float = field(default_factory=time.time)
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

        monitor = Monitor(
            config.checks,
            service_id=settings.service_id,
            version=version,
            on_transition=on_transition if serve else None,
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

        drills = DrillService(
            config.drills,
            store,
            settings.service_id,
            backup_from_results(last_details),
            pg_bin=settings.pg_bin,
        )
        for spec in config.drills if serve else ():

            def add(sched: Any, name: str = spec.name, crontab: str = spec.schedule) -> None:
                async def run() -> None:
                    await drills.run(name)

                add_cron_job(sched, f"drill:{name}", crontab, run)

            scheduler.extra_jobs.append(add)
        metric_sources = MetricSources(
            snapshot=lambda: monitor.snapshot,
            version=version,
            scheduler=scheduler,
            store_writer=writer,
            drills=drills.metric_rows,
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
        await self.drills.load_history()
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

    async def stop(self) -> None:
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.drills.stop()
        await self.scheduler.stop()
        await self.resources.close()
        await self.writer.stop()
        await self.store.dispose()
