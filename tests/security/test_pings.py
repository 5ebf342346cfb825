"""Heartbeat pings against a real drwatch on a PostgreSQL state store: every body the store
cannot keep, or that is not a number where one belongs, is a 422 before anything is written;
only a real store failure is a 503.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.credentials import fake_secret
from tests.security.served import Served, served
from tests.servers import PostgresCluster

TOKEN = fake_secret("push-", 24)
URL = "/api/backups/nightly-job/ping"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def drwatch(pg: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    pg.psql("DROP DATABASE IF EXISTS ping_state")
    pg.psql("CREATE DATABASE ping_state")
    env = {
        "DRWATCH_STATE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/ping_state",
        "DRWATCH_MIGRATE_ON_START": "true",
    }
    config = {"checks": [{"name": "nightly-job", "type": "heartbeat", "params": {"token": TOKEN}}]}
    with served(tmp_path_factory.mktemp("pings"), config, env) as running:
        yield running


def _stored(pg: PostgresCluster) -> int:
    return int(pg.psql("SELECT count(*) FROM heartbeat_events", "ping_state"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"duration_seconds": Infinity}', "duration_seconds"),
        (b'{"duration_seconds": -Infinity}', "duration_seconds"),
        (b'{"duration_seconds": NaN}', "duration_seconds"),
        (b'{"duration_seconds": 1e309}', "duration_seconds"),
        (b'{"duration_seconds": 1e12}', "duration_seconds"),
        (b'{"duration_seconds": "42"}', "duration_seconds"),
        (b'{"duration_seconds": true}', "duration_seconds"),
        (b'{"size_bytes": 9223372036854775808}', "size_bytes"),
        (b'{"size_bytes": 1e400}', "size_bytes"),
        (b'{"size_bytes": true}', "size_bytes"),
        (b'{"size_bytes": "1024"}', "size_bytes"),
        (b'{"size_bytes": 10.5}', "size_bytes"),
        (b'{"size_bytes": -1}', "size_bytes"),
        (b'{"message": "disk\\u0000full"}', "message"),
        (b'{"location": "/backups/\\u0000x.dump"}', "location"),
        (b'{"checksum": "\\u0000"}', "checksum"),
        (b'{"message": "\\ud800"}', "message"),
    ],
)
def test_a_ping_the_store_cannot_keep_is_422_and_not_written(
    drwatch: Served, pg: PostgresCluster, body: bytes, field: str
) -> None:
    """422 in the one validation shape, naming the field; no Retry-After; nothing stored."""
    before = _stored(pg)
    response = httpx.post(f"{drwatch.url}{URL}", content=body, headers=AUTH, timeout=10)
    assert response.status_code == 422, response.text
    assert "retry-after" not in response.headers
    answer = response.json()
    assert answer["detail"] == "invalid request"
    assert [e["loc"] for e in answer["errors"]] == [f"body.{field}"]
    assert _stored(pg) == before


def test_a_valid_ping_is_stored(drwatch: Served, pg: PostgresCluster) -> None:
    """The largest size and a fractional duration are kept as sent."""
    before = _stored(pg)
    body = {"size_bytes": 2**63 - 1, "duration_seconds": 12.5, "message": "ok ✓"}
    response = httpx.post(f"{drwatch.url}{URL}", json=body, headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    assert _stored(pg) == before + 1
