"""The running service's parts, built and disposed of together by the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from app.checks.base import Check, CheckContext
from app.config import Config, Settings
from app.drills.service import DrillService, backup_from_results
from app.metrics import MetricSources, build_registry
from app.monitor import Monitor
from app.scheduler import Scheduler, add_cron_job
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
    version: str
    drills: DrillService
    started_at: float = field(default_factory=time.time)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    # Last successful and last finished drill run per drill, as recorded in the store (seeded
    # at start-up, so /api/backup-status and the metrics survive a restart without store I/O).
    drill_successes: dict[str, dict[str, Any]] = field(default_factory=dict)
    drill_last_runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, config: Config) -> Runtime:
        version = drwatch_version()
        store = Store.from_url(settings.state_url, settings.service_id)
        writer = StoreWriter(retry_max=settings.store_retry_max)
        context = CheckContext(store=store, service_id=settings.service_id)
        checks = {c.name: c.build(context) for c in config.checks}

        def on_transition(transition: Transition) -> None:
            writer.submit("transition", lambda: store.record_transitions([transition]))

        monitor = Monitor(
            config.checks,
            service_id=settings.service_id,
            version=version,
            on_transition=on_transition,
        )
        scheduler = Scheduler(monitor, checks.values(), {c.name: c.interval for c in config.checks})

        def last_details(name: str) -> Any:
            state = monitor.snapshot.checks.get(name)
            return state.last_result.details if state and state.last_result else None

        pg_bin = os.environ.get("DRWATCH_PG_BIN")
        drills = DrillService(
            config.drills,
            store,
            settings.service_id,
            backup_from_results(last_details),
            pg_bin=Path(pg_bin) if pg_bin else None,
        )
        for spec in config.drills:

            def add(sched: Any, name: str = spec.name, crontab: str = spec.schedule) -> None:
                async def run() -> None:
                    await drills.run(name)

                add_cron_job(sched, f"drill:{name}", crontab, run)

            scheduler.extra_jobs.append(add)
        runtime = cls(
            settings=settings,
            config=config,
            store=store,
            writer=writer,
            monitor=monitor,
            checks=checks,
            scheduler=scheduler,
            registry=CollectorRegistry(),
            version=version,
            drills=drills,
        )
        runtime.registry = build_registry(
            MetricSources(
                snapshot=lambda: monitor.snapshot,
                version=version,
                scheduler=scheduler,
                store_writer=writer,
                drills=runtime.drill_metrics,
            )
        )
        return runtime

    def drill_metrics(self) -> list[dict[str, Any]]:
        """Per drill: RTO, the last success and duration, runs by result (for /metrics)."""
        rows = []
        for name, spec in self.drills.specs.items():
            report = self.drills.last_reports.get(name)
            success_at: Any = self.drill_successes.get(name, {}).get("finished_at")
            if report is not None and report.passed:
                success_at = report.finished_at
            last = report.as_dict() if report else self.drill_successes.get(name, {})
            rows.append(
                {
                    "name": name,
                    "rto_seconds": spec.rto,
                    # Never restored counts as restored at the epoch: a drill that has never
                    # passed is overdue, and the overdue alert must be able to say so.
                    "last_success_at": success_at or 0.0,
                    "last_duration_seconds": last.get("total_seconds") if last else None,
                    "runs": {
                        result: self.drills.runs_total.get((name, result), 0)
                        for result in ("pass", "fail")
                    },
                }
            )
        return rows

    def drill_summaries(self) -> list[dict[str, Any]]:
        """Per drill: its schedule and RTO, whether it runs, its last success and last run."""
        rows = []
        for metrics_row in self.drill_metrics():
            name = metrics_row["name"]
            spec = self.drills.specs[name]
            report = self.drills.last_reports.get(name)
            last_run = report.as_dict() if report else self.drill_last_runs.get(name)
            success = metrics_row["last_success_at"]
            rows.append(
                {
                    "name": name,
                    "source": spec.source,
                    "schedule": spec.schedule,
                    "rto_seconds": spec.rto,
                    "running": name in self.drills.running,
                    "last_success_at": success if success else None,
                    "last_run": last_run,
                }
            )
        return rows

    async def _seed_drill_history(self) -> None:
        for name in self.drills.specs:
            try:
                success = await self.store.last_successful_drill_run(name)
                last = await self.store.last_drill_run(name)
            except Exception:
                return  # the store is down or not migrated; history starts from this process
            if success is not None and success.get("report"):
                self.drill_successes[name] = success["report"]
            if last is not None and last.get("report"):
                self.drill_last_runs[name] = last["report"]

    async def start(self, *, run_scheduler: bool = True) -> None:
        if self.settings.migrations_on_start:
            try:
                await asyncio.to_thread(upgrade, self.settings.state_url)
            except Exception as exc:
                # Probing and /health do not need the store; history waits until it is back.
                log.error(
                    "state store migrations failed; drwatch runs without history until the "
                    "store is reachable and migrated (drwatch db upgrade)",
                    extra={"error": f"{type(exc).__name__}: {exc}"},
                )
        self.writer.start()
        await self._seed_drill_history()
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

    async def stop(self) -> None:
        await self.drills.stop()
        await self.scheduler.stop()
        await self.writer.stop()
        await self.store.dispose()
