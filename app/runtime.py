"""The running service's parts, built and disposed of together by the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from prometheus_client import CollectorRegistry

from app.checks.base import Check, CheckContext
from app.config import Config, Settings
from app.metrics import MetricSources, build_registry
from app.monitor import Monitor
from app.scheduler import Scheduler
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
    started_at: float = field(default_factory=time.time)
    extras: dict[str, Any] = field(default_factory=dict)

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
        )
        runtime.registry = build_registry(
            MetricSources(
                snapshot=lambda: monitor.snapshot,
                version=version,
                scheduler=scheduler,
                store_writer=writer,
            )
        )
        return runtime

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
        await self.scheduler.stop()
        await self.writer.stop()
        await self.store.dispose()
