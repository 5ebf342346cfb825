"""kill -9 in the middle of a stream of heartbeat pings loses no acknowledged ping.

A backup job's ping is acknowledged (HTTP 200) only after it is committed to the state store, so
whatever happens to drwatch afterwards, the job never has to send it again. Here clients send
pings as fast as they can; after a few hundred acknowledgements drwatch is killed with SIGKILL
while requests are still in flight, restarted on the same store, and every acknowledged ping must
be in the store. Pings that were in flight may or may not be there: their jobs were not told
they were recorded and retry.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.store.repository import Store
from tests.faults.service import Drwatch, state_url_of, upgrade_store
from tests.servers import PostgresCluster

TOKEN = "faults-heartbeat-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SOURCE = "nightly-job"
PING = f"/api/backups/{SOURCE}/ping"
# Acknowledged pings before the kill, and how many clients send them at once.
KILL_AFTER = 300
CLIENTS = 8
STORM_LIMIT = 120.0

CONFIG: dict[str, Any] = {
    "checks": [
        {
            "name": SOURCE,
            "type": "heartbeat",
            "params": {"token": TOKEN, "period": "24h", "grace": "1h"},
        }
    ]
}


class PingStorm:
    """Clients that ping as fast as they can until drwatch stops answering after the kill."""

    def __init__(self, service: Drwatch) -> None:
        self.service = service
        self.numbers = itertools.count()
        self.acknowledged: set[str] = set()
        self.unanswered: set[str] = set()
        self.refused = 0
        self.killed = False

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(
            base_url=self.service.url, timeout=10.0, limits=limits
        ) as client:
            await asyncio.wait_for(
                asyncio.gather(self._killer(), *(self._client(client) for _ in range(CLIENTS))),
                STORM_LIMIT,
            )

    async def _client(self, client: httpx.AsyncClient) -> None:
        while True:
            message = f"ping-{next(self.numbers):06d}"
            try:
                response = await client.post(PING, headers=AUTH, json={"message": message})
            except httpx.HTTPError:
                self.unanswered.add(message)
                if self.killed:
                    return
                raise
            if response.status_code == 200:
                self.acknowledged.add(message)
            else:
                # The job would retry; a refusal is never an acknowledgement.
                assert response.status_code == 503, response.text
                self.refused += 1

    async def _killer(self) -> None:
        while len(self.acknowledged) < KILL_AFTER:
            await asyncio.sleep(0.005)
        self.killed = True
        self.service.kill()


async def _stored_messages(state_url: str) -> set[str]:
    store = Store.from_url(state_url)
    try:
        events = await store.heartbeat_events(SOURCE, limit=1_000_000)
    finally:
        await store.dispose()
    return {e.message for e in events if e.message is not None}


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["sqlite", "postgresql"])
async def test_every_acknowledged_ping_survives_a_kill_9_mid_stream(
    store_kind: str,
    drwatch: Callable[..., Drwatch],
    request: pytest.FixtureRequest,
    tmp_path: Any,
    record_property: Callable[[str, object], None],
) -> None:
    """SIGKILL during a ping storm; after a restart on the same store every 200 is stored."""
    if store_kind == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("state_pg")
        state_url = state_url_of(cluster)
        await asyncio.to_thread(upgrade_store, state_url)
    else:
        state_url = f"sqlite+aiosqlite:///{tmp_path}/state.db"
    service = drwatch(CONFIG, state_url)
    await asyncio.to_thread(service.start)

    storm = PingStorm(service)
    await storm.run()
    assert not service.alive
    assert len(storm.acknowledged) >= KILL_AFTER
    record_property("acknowledged", len(storm.acknowledged))
    record_property("unanswered", len(storm.unanswered))
    record_property("refused", storm.refused)

    await asyncio.to_thread(service.start)
    stored = await _stored_messages(state_url)
    lost = sorted(storm.acknowledged - stored)
    assert not lost, f"{len(lost)} acknowledged pings are not in the store: {lost[:10]}"

    # The restarted drwatch takes pings again and judges the source from the surviving ones.
    after = await asyncio.to_thread(
        service.post, PING, headers=AUTH, json={"message": "after the restart"}
    )
    assert after.status_code == 200, after.text
    assert "after the restart" in await _stored_messages(state_url)
