"""The vapi check against a real HTTP server speaking VAPI's assistant and phone-number API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app.checks.base import Status
from app.checks.vapi import VapiCheck
from tests.fakes.base import Fault
from tests.fakes.runs import assert_failed, assert_secret_absent, run_once
from tests.fakes.vapi import FakeVapi

KEY = str(uuid.uuid4())
ASSISTANT = "5b0a9d3c-1e2f-4a5b-8c7d-6e5f4a3b2c1d"
PHONE = "0d1c2b3a-4f5e-4d6c-9b8a-7f6e5d4c3b2a"
BLOCKED_PHONE = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


@pytest.fixture(scope="module")
def vapi() -> Iterator[FakeVapi]:
    fake = FakeVapi(KEY)
    fake.add_assistant(ASSISTANT, "Receptionist")
    fake.add_phone_number(PHONE, "+15550100199")
    fake.add_phone_number(BLOCKED_PHONE, "+15550100200", status="blocked")
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _clean(vapi: FakeVapi) -> Iterator[None]:
    vapi.reset()
    yield
    vapi.reset()


def check(base_url: str, *, key: str = KEY, timeout: float = 2.0, **params: Any) -> VapiCheck:
    return VapiCheck(
        "vapi", VapiCheck.Params(api_key=key, base_url=base_url, **params), timeout=timeout
    )


async def test_it_passes_when_the_key_lists_assistants(vapi: FakeVapi) -> None:
    """Without ids, the check lists one assistant with the bearer key."""
    result = await run_once(check(vapi.url))
    assert result.status is Status.PASS, result.output
    request = vapi.requests[-1]
    assert (request.method, request.path, request.query) == ("GET", "/assistant", {"limit": "1"})


async def test_it_passes_when_the_assistant_and_phone_number_exist(vapi: FakeVapi) -> None:
    """Configured assistant and phone number are both fetched."""
    result = await run_once(check(vapi.url, assistant_id=ASSISTANT, phone_number_id=PHONE))
    assert result.status is Status.PASS, result.output
    assert "Receptionist" in result.output
    assert [r.path for r in vapi.requests] == [f"/assistant/{ASSISTANT}", f"/phone-number/{PHONE}"]


async def test_it_fails_permanently_when_the_key_is_wrong(vapi: FakeVapi) -> None:
    """401 is permanent and the key stays out of the message."""
    wrong = "vapi-wrong-00000000-0000-4000-8000-000000000000"
    result = await run_once(check(vapi.url, key=wrong))
    assert_failed(result, "rejected", "401", permanent=True)
    assert_secret_absent(result, wrong, KEY)


async def test_it_fails_permanently_when_the_assistant_is_missing(vapi: FakeVapi) -> None:
    """A deleted assistant (404) fails, naming it."""
    missing = "00000000-dead-4000-8000-000000000000"
    result = await run_once(check(vapi.url, assistant_id=missing))
    assert_failed(result, missing, "404", permanent=True)


async def test_it_fails_permanently_when_the_phone_number_is_missing(vapi: FakeVapi) -> None:
    """A released phone number (404) fails, naming it."""
    missing = "11111111-dead-4000-8000-000000000000"
    result = await run_once(check(vapi.url, phone_number_id=missing))
    assert_failed(result, missing, "404", permanent=True)


async def test_it_fails_when_the_phone_number_is_blocked(vapi: FakeVapi) -> None:
    """A blocked phone number cannot take calls: fail."""
    result = await run_once(check(vapi.url, phone_number_id=BLOCKED_PHONE))
    assert_failed(result, "blocked")


async def test_it_fails_when_an_assistant_has_no_id(vapi: FakeVapi) -> None:
    """An assistant object without id fails (the list case is in test_vendor_contract.py)."""
    vapi.inject(Fault(json={"results": []}))
    result = await run_once(check(vapi.url, assistant_id=ASSISTANT))
    assert_failed(result, "'id'")
