"""One details policy for every endpoint that shows outputs: endpoint x token x policy.

A heartbeat source that reported a failure carries the job's message in its output; that message
must appear exactly where the policy (DRWATCH_HEALTH_DETAILS) allows outputs, and the public
answers must say how to see more.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.credentials import fake_secret
from tests.polling import wait_until
from tests.security.served import Served, served

PUSH_TOKEN = fake_secret("push-", 24)
DETAILS_TOKEN = fake_secret("details-", 24)
ADMIN_TOKEN = fake_secret("admin-", 24)
# What the job said: it reaches the check's output, and so every view of it.
MARKER = "nas-7 volume full at 10.0.3.17"

CONFIG = {
    "checks": [
        {
            "name": "nightly-job",
            "type": "heartbeat",
            "criticality": "info",
            "rise": 1,
            "fall": 1,
            "params": {"token": PUSH_TOKEN, "period": "24h"},
        }
    ]
}

ENDPOINTS = [
    "/api/checks",
    "/api/checks/nightly-job",
    "/api/checks/nightly-job/history",
    "/api/backup-status",
    "/health",
    "/health?verbose",
    "/health/nightly-job",
]
TOKENS = {
    "none": None,
    "wrong": "not-the-details-token",
    "details": DETAILS_TOKEN,
    "admin": ADMIN_TOKEN,
}


def _shown(policy: str, token: str) -> bool:
    return policy == "always" or (policy == "authorized" and token == "details")


@pytest.fixture(scope="module", params=["authorized", "always", "never"])
def drwatch(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Served]]:
    policy: str = request.param
    env = {
        "DRWATCH_HEALTH_DETAILS": policy,
        "DRWATCH_DETAILS_TOKEN": DETAILS_TOKEN,
        "DRWATCH_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    with served(tmp_path_factory.mktemp(f"policy-{policy}"), CONFIG, env) as running:
        with running.client(headers={"Authorization": f"Bearer {PUSH_TOKEN}"}) as client:

            def transitions() -> int:
                history = client.get("/api/checks/nightly-job/history").json()
                return len(history["transitions"])

            # fail (no ping yet) -> pass -> fail with the job's message: the last transition
            # in the store carries the message too.
            wait_until(lambda: transitions() >= 1, 30)
            assert client.post("/api/backups/nightly-job/ping").status_code == 200
            wait_until(lambda: transitions() >= 2, 30)
            answer = client.post("/api/backups/nightly-job/fail", json={"message": MARKER})
            assert answer.status_code == 200, answer.text
            wait_until(lambda: transitions() >= 3, 30)
        yield policy, running


@pytest.mark.parametrize("token", list(TOKENS))
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_outputs_follow_the_details_policy(
    drwatch: tuple[str, Served], endpoint: str, token: str
) -> None:
    """The job's message is shown exactly when the policy allows it, on every endpoint."""
    policy, running = drwatch
    secret = TOKENS[token]
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    response = httpx.get(f"{running.url}{endpoint}", headers=headers, timeout=10)
    assert response.status_code in (200, 503), response.text
    assert (MARKER in response.text) is _shown(policy, token), (endpoint, response.text[:500])


@pytest.mark.parametrize(
    "endpoint",
    [e for e in ENDPOINTS if e.startswith("/api/")] + ["/health?verbose"],
)
def test_hidden_outputs_say_how_to_see_them(drwatch: tuple[str, Served], endpoint: str) -> None:
    """Without the token the public parts remain (name, status) with a sentence on details."""
    policy, running = drwatch
    if policy == "always":
        pytest.skip("nothing is hidden")
    response = httpx.get(f"{running.url}{endpoint}", timeout=10)
    assert "nightly-job" in response.text
    assert "Outputs are hidden" in response.text
    if endpoint.startswith("/api/"):
        body = response.json()
        assert "DRWATCH" in body["details_hint"] or "Authorization" in body["details_hint"]
