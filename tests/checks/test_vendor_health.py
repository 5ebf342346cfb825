"""A failing vendor is global: it turns /health into warn (200), never into a failover (503)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.checks.base import Status
from tests.credentials import fake_secret
from tests.fakes.base import Fault
from tests.fakes.endpoint import Endpoint
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio import Account, FakeTwilio
from tests.harness import running_app, settings_for

SID = "AC" + "4c" * 16
TOKEN = fake_secret(length=32, alphabet="0123456789abcdef")
KEY = fake_secret("sk-proj-", 40)


@pytest.fixture
def servers() -> Iterator[tuple[Endpoint, FakeOpenAI, FakeTwilio]]:
    endpoint, openai, twilio = Endpoint(), FakeOpenAI(KEY), FakeTwilio()
    twilio.add(Account(SID, TOKEN))
    yield endpoint, openai, twilio
    for server in (endpoint, openai, twilio):
        server.stop()


def _check(name: str, type_name: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_name,
        "interval": "1s",
        "timeout": "500ms",
        "fall": 1,
        "rise": 1,
        "params": params,
    }


async def test_a_degraded_vendor_failing_leaves_health_at_200_warn(
    servers: tuple[Endpoint, FakeOpenAI, FakeTwilio], tmp_path: Path
) -> None:
    """A rejected OpenAI key and a Twilio outage give /health 200 warn; the app's own endpoint
    (critical http check) still passes, and no secret shows in the details.
    """
    endpoint, openai, twilio = servers
    twilio.inject(Fault(status=503))
    wrong_key = fake_secret("sk-proj-", 40)
    config = {
        "checks": [
            _check("app", "http", {"url": f"{endpoint.url}/health"}),
            _check("openai", "openai", {"api_key": wrong_key, "base_url": openai.url}),
            _check(
                "twilio",
                "twilio",
                {"account_sid": SID, "auth_token": TOKEN, "base_url": twilio.url},
            ),
        ]
    }
    settings = settings_for(tmp_path, health_details="always")
    async with running_app(config, settings) as running:
        await running.wait_ready()

        def vendors_failed() -> bool:
            states = running.runtime.monitor.snapshot.checks
            return all(states[name].status is Status.FAIL for name in ("openai", "twilio"))

        await running.wait_until(vendors_failed)
        checks = running.runtime.monitor.snapshot.checks
        assert checks["app"].config.criticality == "critical"
        assert checks["openai"].config.criticality == "degraded"
        response = await running.client.get("/health")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "warn"
        assert wrong_key not in response.text
        assert TOKEN not in response.text
