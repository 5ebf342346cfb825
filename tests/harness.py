"""Run a drwatch app in-process for API tests: real lifespan, real scheduler, httpx client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.config import Config, parse_config
from app.main import create_app
from app.runtime import Runtime
from app.settings import Settings
from tests.polling import eventually


@dataclass
class RunningApp:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def wait_until(self, predicate: Any, timeout: float = 15.0) -> None:
        await eventually(predicate, timeout)

    async def wait_ready(self, timeout: float = 15.0) -> None:
        """Until every check (not only the critical ones) has a first result."""
        await self.wait_until(
            lambda: all(
                s.last_result is not None for s in self.runtime.monitor.snapshot.checks.values()
            ),
            timeout,
        )


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"state_url": f"sqlite+aiosqlite:///{tmp_path}/state.db"}
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running_app(
    config: Config | Mapping[str, Any], settings: Settings, *, run_scheduler: bool = True
) -> AsyncIterator[RunningApp]:
    if not isinstance(config, Config):
        config = parse_config(dict(config))
    app = create_app(settings, config, run_scheduler=run_scheduler)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://drwatch") as client:
            yield RunningApp(app, client)
