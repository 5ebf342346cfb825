"""The twilio check against a real HTTP server speaking Twilio's Account and Balance resources."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.checks.base import Status
from app.checks.twilio import TwilioCheck
from tests.credentials import fake_secret
from tests.fakes.runs import assert_failed, assert_secret_absent, run_once
from tests.fakes.twilio import Account, FakeTwilio

SID = "AC" + "1f" * 16
TOKEN = fake_secret(length=32, alphabet="0123456789abcdef")
SUSPENDED_SID = "AC" + "2e" * 16
LOW_SID = "AC" + "3d" * 16


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    fake.add(Account(SID, TOKEN))
    fake.add(Account(SUSPENDED_SID, TOKEN + "-s", status="suspended"))
    fake.add(Account(LOW_SID, TOKEN + "-l", balance="3.20"))
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _clean(twilio: FakeTwilio) -> Iterator[None]:
    twilio.reset()
    yield
    twilio.reset()


def check(
    base_url: str, *, sid: str = SID, token: str = TOKEN, timeout: float = 2.0, **params: Any
) -> TwilioCheck:
    return TwilioCheck(
        "twilio",
        TwilioCheck.Params(account_sid=sid, auth_token=token, base_url=base_url, **params),
        timeout=timeout,
    )


async def test_it_passes_when_the_account_is_active(twilio: FakeTwilio) -> None:
    """An active account passes, read with basic auth on the documented path."""
    result = await run_once(check(twilio.url))
    assert result.status is Status.PASS, result.output
    assert "active" in result.output
    request = twilio.requests[-1]
    assert request.method == "GET"
    assert request.path == f"/2010-04-01/Accounts/{SID}.json"
    assert_secret_absent(result, TOKEN)


async def test_it_fails_permanently_when_the_auth_token_is_wrong(twilio: FakeTwilio) -> None:
    """A wrong auth token is a permanent failure whose message does not contain the token."""
    wrong = "wrong-token-5f6e7d8c9b0a"
    result = await run_once(check(twilio.url, token=wrong))
    assert_failed(result, "rejected", "401", permanent=True)
    assert_secret_absent(result, wrong, TOKEN)


async def test_it_fails_when_the_account_is_suspended(twilio: FakeTwilio) -> None:
    """A suspended account fails: Twilio refuses its SMS and calls."""
    result = await run_once(check(twilio.url, sid=SUSPENDED_SID, token=TOKEN + "-s"))
    assert_failed(result, "suspended", permanent=True)


async def test_it_warns_when_the_balance_is_below_the_minimum(twilio: FakeTwilio) -> None:
    """A balance under min_balance warns and reports the balance."""
    result = await run_once(check(twilio.url, sid=LOW_SID, token=TOKEN + "-l", min_balance=10))
    assert result.status is Status.WARN, result.output
    assert "3.20 USD" in result.output
    assert result.observed_value == pytest.approx(3.2)
    assert twilio.requests[-1].path == f"/2010-04-01/Accounts/{LOW_SID}/Balance.json"


async def test_it_passes_when_the_balance_is_above_the_minimum(twilio: FakeTwilio) -> None:
    """A balance over min_balance passes."""
    result = await run_once(check(twilio.url, min_balance=10))
    assert result.status is Status.PASS, result.output
    assert result.details["balance"] == pytest.approx(25.5)


async def test_it_fails_when_the_balance_is_empty() -> None:
    """An empty balance fails: SMS has already stopped."""
    fake = FakeTwilio()
    try:
        fake.add(Account(SID, TOKEN, balance="0.00"))
        result = await run_once(check(fake.url, min_balance=5))
        assert_failed(result, "0.00 USD", "topped up")
    finally:
        fake.stop()
