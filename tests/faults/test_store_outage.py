"""The PostgreSQL state store stops and comes back while a real drwatch keeps serving.

While the store is down, ``/health`` answers from memory with the verdict of the checks, pings
of backup jobs are refused with 503 and ``Retry-After`` (so the job retries and no acknowledged
ping can be lost), and a check's state change is queued; once the store is back the queued
transition is in the history and pings are accepted again. A store that hangs instead of
refusing holds a ping no longer than the endpoint's store timeout, and never holds ``/health``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from app.api.backups import STORE_TIMEOUT
from app.store.repository import Store
from tests.faults.proxy import FaultProxy
from tests.faults.service import Drwatch, state_url_of, upgrade_store
from tests.servers import PostgresCluster, RedisServer

TOKEN = "faults-heartbeat-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PING = "/api/backups/nightly-job/ping"


def _config(redis_url: str, dsn: str) -> dict[str, Any]:
    fast = {"interval": "1s", "timeout": "0.8s", "fall": 1, "rise": 1}
    return {
        "checks": [
            {
                "name": "cache",
                "type": "redis",
                "criticality": "critical",
                **fast,
                "params": {"url": redis_url},
            },
            {
                "name": "db",
                "type": "postgres",
                "criticality": "critical",
                **fast,
                "params": {"dsn": dsn},
            },
            {
                "name": "nightly-job",
                "type": "heartbeat",
                # One evaluated ping is enough to pass (the default rise of 2 would wait for
                # the next interval, a minute away).
                "rise": 1,
                "params": {"token": TOKEN, "period": "24h", "grace": "1h"},
            },
        ]
    }


def _stored_pings(state_url: str) -> list[str]:
    async def read() -> list[str]:
        store = Store.from_url(state_url)
        try:
            events = await store.heartbeat_events("nightly-job", limit=1000)
        finally:
            await store.dispose()
        return [e.message or "" for e in events if e.kind == "success"]

    return asyncio.run(read())


def _start_with_passing_checks(
    drwatch: Callable[..., Drwatch], state_url: str, pg: PostgresCluster, cache: FaultProxy
) -> Drwatch:
    upgrade_store(state_url)
    # Retries against the store every 0.5-2 s, so the queued write lands soon after it is back.
    service = drwatch(
        _config(f"redis://{cache.address}/0", pg.dsn), state_url, store_retry_max="2s"
    )
    service.start()
    first = service.post(PING, headers=AUTH, json={"message": "before the outage"})
    assert first.status_code == 200, first.text
    service.wait_for(
        lambda: service.get("/health").json()["status"] == "pass", "all checks pass at start"
    )
    return service


@pytest.mark.slow
def test_a_store_outage_keeps_health_answering_refuses_pings_and_queues_transitions(
    drwatch: Callable[..., Drwatch],
    proxies: Callable[[int], FaultProxy],
    state_pg: PostgresCluster,
    pg: PostgresCluster,
    redis_server: RedisServer,
) -> None:
    """Down: /health from memory, ping 503 + Retry-After, transition queued; back: all stored."""
    cache = proxies(redis_server.port)
    state_url = state_url_of(state_pg)
    service = _start_with_passing_checks(drwatch, state_url, pg, cache)

    state_pg.stop()
    refused = service.post(PING, headers=AUTH, json={"message": "during the outage"})
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) > 0
    assert "retry" in refused.json()["detail"].lower()
    # The verdict still comes from the checks, which do not need the store.
    health = service.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "pass"

    # A state change while the store is down: the cache dies.
    cache.refuse()
    service.wait_for(lambda: service.get("/health").status_code == 503, "/health turns 503")
    assert service.get("/health").json()["status"] == "fail"
    assert service.get("/health/cache").status_code == 503
    assert service.get("/health/db").status_code == 200
    service.wait_for(lambda: service.metric("drwatch_store_up") == 0.0, "drwatch_store_up turns 0")
    assert service.metric("drwatch_store_pending_writes") >= 1
    # History cannot be read: a 503 that says why, not a 500.
    history = service.get("/api/checks/cache/history")
    assert history.status_code == 503
    assert "store" in history.json()["detail"]
    assert service.post(PING, headers=AUTH).status_code == 503

    state_pg.start()
    service.wait_for(
        lambda: service.metric("drwatch_store_pending_writes") == 0.0, "the queue is flushed"
    )
    assert service.metric("drwatch_store_up") == 1.0
    (outage,) = [t for t in service.transitions("cache") if t["to_status"] == "fail"]
    assert outage["from_status"] == "pass"
    assert "refused" in outage["output"].lower()
    accepted = service.post(PING, headers=AUTH, json={"message": "after the outage"})
    assert accepted.status_code == 200, accepted.text

    cache.pass_through()
    service.wait_for(lambda: service.get("/health").status_code == 200, "/health is 200 again")
    service.wait_for(
        lambda: service.transitions("cache")[0]["to_status"] == "pass",
        "the recovery is in the history",
    )
    # Exactly the acknowledged pings are stored: none lost, none of the refused ones.
    assert sorted(_stored_pings(state_url)) == ["after the outage", "before the outage"]


@pytest.mark.slow
def test_a_hung_store_refuses_pings_after_its_timeout_while_health_answers(
    drwatch: Callable[..., Drwatch],
    proxies: Callable[[int], FaultProxy],
    state_pg: PostgresCluster,
    pg: PostgresCluster,
    redis_server: RedisServer,
) -> None:
    """A black-holed store: the ping waits out the store timeout, then 503; /health never waits."""
    store = proxies(state_pg.port)
    cache = proxies(redis_server.port)
    state_url = f"postgresql+asyncpg://postgres@{store.address}/state"
    service = _start_with_passing_checks(drwatch, state_url, pg, cache)

    store.black_hole()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            httpx.post,
            f"{service.url}{PING}",
            headers=AUTH,
            json={"message": "while the store hangs"},
            timeout=STORE_TIMEOUT + 10,
        )
        answered_meanwhile = 0
        while not pending.done():
            health = service.get("/health")
            assert (health.status_code, health.json()["status"]) == (200, "pass")
            answered_meanwhile += 1
        refused = pending.result()
    assert answered_meanwhile > 0
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) > 0

    store.pass_through()
    accepted = service.post(
        PING, headers=AUTH, json={"message": "after the hang"}, timeout=STORE_TIMEOUT + 10
    )
    assert accepted.status_code == 200, accepted.text
    assert sorted(_stored_pings(state_url)) == ["after the hang", "before the outage"]


@pytest.mark.slow
def test_a_refused_ping_turns_store_up_to_zero(
    drwatch: Callable[..., Drwatch],
    proxies: Callable[[int], FaultProxy],
    state_pg: PostgresCluster,
    pg: PostgresCluster,
    redis_server: RedisServer,
) -> None:
    """drwatch_store_up says 0 once drwatch has failed to write a ping to a stopped store."""
    cache = proxies(redis_server.port)
    service = _start_with_passing_checks(drwatch, state_url_of(state_pg), pg, cache)
    state_pg.stop()
    assert service.post(PING, headers=AUTH).status_code == 503
    assert service.metric("drwatch_store_up") == 0.0
