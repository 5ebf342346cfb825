"""Fixtures of the fault tests: drwatch processes and fault proxies that are always cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.proxy import FaultProxy
from tests.faults.service import Drwatch
from tests.servers import PostgresCluster


@pytest.fixture
def drwatch(tmp_path: Path) -> Iterator[Callable[..., Drwatch]]:
    """Makes drwatch services (not started); every one is stopped at teardown."""
    made: list[Drwatch] = []

    def make(config: dict[str, Any], state_url: str, **settings: str) -> Drwatch:
        root = tmp_path / f"drwatch-{len(made)}"
        root.mkdir()
        service = Drwatch(root, config, state_url, **settings)
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


@pytest.fixture
def proxies() -> Iterator[Callable[[int], FaultProxy]]:
    """Makes fault proxies in front of an upstream port; every one is closed at teardown."""
    made: list[FaultProxy] = []

    def make(upstream_port: int) -> FaultProxy:
        proxy = FaultProxy(upstream_port)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def state_pg() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of the test's own for drwatch's state store (tests stop it)."""
    cluster = PostgresCluster.create(name="faults-state")
    cluster.psql("CREATE DATABASE state")
    yield cluster
    cluster.destroy()
