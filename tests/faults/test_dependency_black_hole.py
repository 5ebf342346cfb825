"""A critical dependency black-holed, then released, under a real drwatch.

PostgreSQL and Redis each sit behind a fault proxy. One of them is black-holed (connections are
accepted and never answered, as when a server hangs or a firewall drops packets): its check must
fail at its timeout with a sentence saying nothing answered, the verdict must turn to fail only
after ``fall`` failing runs, ``/health`` must keep answering while the probes hang, and the other
check must keep its own state. Released, the check must recover after ``rise`` passing runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.proxy import FaultProxy
from tests.faults.service import Drwatch
from tests.servers import PostgresCluster, RedisServer

INTERVAL = 1.0
TIMEOUT = 0.8
FALL = 2
RISE = 2


def _config(db_address: str, cache_address: str) -> dict[str, Any]:
    damping = {"interval": f"{INTERVAL:g}s", "timeout": f"{TIMEOUT:g}s", "fall": FALL, "rise": RISE}
    return {
        "checks": [
            {
                "name": "db",
                "type": "postgres",
                "criticality": "critical",
                **damping,
                # Only the latency of the proxy on a busy machine could make it warn.
                "params": {
                    "dsn": f"postgresql://postgres@{db_address}/postgres",
                    "latency_warn": None,
                },
            },
            {
                "name": "cache",
                "type": "redis",
                "criticality": "critical",
                **damping,
                "params": {"url": f"redis://{cache_address}/0"},
            },
        ]
    }


class Observer:
    """Reads drwatch's own account of the checks, one atomic snapshot per /api/checks answer."""

    def __init__(self, service: Drwatch, hung: str, healthy: str) -> None:
        self.service = service
        self.hung = hung
        self.healthy = healthy
        self.health_codes: list[int] = []

    def sample(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(overall status, the hung check, the healthy check), and one /health answer."""
        # Each request must be answered within the client's bound: a slow answer raises here.
        self.health_codes.append(self.service.get("/health").status_code)
        answer = self.service.get("/api/checks").json()
        checks = {c["name"]: c for c in answer["checks"]}
        return answer["status"], checks[self.hung], checks[self.healthy]


@pytest.mark.slow
@pytest.mark.parametrize("hung", ["db", "cache"])
def test_a_black_holed_dependency_fails_at_its_timeout_and_recovers_when_released(
    hung: str,
    drwatch: Callable[..., Drwatch],
    proxies: Callable[[int], FaultProxy],
    pg: PostgresCluster,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """fall hung runs turn /health 503 (answered fast throughout); rise good runs bring 200 back."""
    proxy = {"db": proxies(pg.port), "cache": proxies(redis_server.port)}
    healthy = "cache" if hung == "db" else "db"
    service = drwatch(
        _config(proxy["db"].address, proxy["cache"].address),
        f"sqlite+aiosqlite:///{tmp_path}/state.db",
    )
    service.start()
    service.wait_for(lambda: service.get("/health").status_code == 200, "both checks pass")
    observer = Observer(service, hung, healthy)

    proxy[hung].black_hole()
    observer.health_codes.clear()
    healthy_runs_before = sum(service.check(healthy)["runs"].values())
    overall, hung_check, healthy_check = observer.sample()
    # Hung runs until the verdict has been fail for two more runs: the damping and the answers
    # while probes hang are both observed.
    while hung_check["consecutive_failures"] < FALL + 2:
        failing = hung_check["consecutive_failures"]
        assert hung_check["status"] == ("fail" if failing >= FALL else "pass"), hung_check
        assert overall == ("fail" if failing >= FALL else "pass"), (overall, hung_check)
        assert healthy_check["status"] == "pass", healthy_check
        assert service.alive, service.describe()
        overall, hung_check, healthy_check = observer.sample()

    result = hung_check["last_result"]
    assert result["status"] == "fail"
    assert f"did not answer within the {TIMEOUT:g}s timeout" in result["output"], result
    # It waited for an answer (a hang, not a refusal), and the proxy saw the probes come in.
    assert result["duration"] >= TIMEOUT / 2
    assert proxy[hung].swallowed_connections >= FALL
    # /health followed the verdict: pass until fall failures, then 503 and stayed there.
    codes = observer.health_codes
    assert codes[-1] == 503
    assert codes == sorted(codes), f"/health went back to 200 while hung: {codes}"
    assert set(codes) <= {200, 503}
    body = service.get("/health").json()
    assert body["status"] == "fail"
    assert body["checks"], body
    assert service.get(f"/health/{hung}").status_code == 503
    assert service.get(f"/health/{healthy}").status_code == 200
    # The healthy check kept running on its own schedule while the other one hung.
    assert sum(service.check(healthy)["runs"].values()) > healthy_runs_before

    proxy[hung].pass_through()
    observer.health_codes.clear()
    overall, hung_check, _ = observer.sample()
    while hung_check["status"] != "pass":
        assert hung_check["consecutive_successes"] < RISE, hung_check
        assert overall == "fail", (overall, hung_check)
        assert service.alive, service.describe()
        overall, hung_check, _ = observer.sample()
    assert hung_check["consecutive_successes"] >= RISE
    assert overall == "pass"
    service.wait_for(lambda: service.get("/health").status_code == 200, "/health is 200 again")

    # Transitions reach the store in the background, so the newest may still be on its way.
    service.wait_for(lambda: len(service.transitions(hung)) == 3, "pending, fail, pass stored")
    recovered, failed, first = service.transitions(hung)
    assert first["from_status"] is None
    assert (failed["from_status"], failed["to_status"]) == ("pass", "fail")
    assert "did not answer within" in failed["output"]
    assert (recovered["from_status"], recovered["to_status"]) == ("fail", "pass")
    assert all(t["to_status"] == "pass" for t in service.transitions(healthy))
