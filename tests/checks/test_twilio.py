"""The twilio check against a real HTTP server speaking Twilio's Account and Balance resources."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.checks.base import Status
from app.checks.twilio import TwilioCheck
from tests.credentials import fake_secret
from tests.fakes.base import Fault
from tests.fakes.runs import assert_failed, assert_secret_absent, run_once
from tests.fakes.twilio import Account, FakeTwilio
from tests.servers import black_hole, refused_port

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


async def test_it_fails_permanently_on_403(twilio: FakeTwilio) -> None:
    """403 means the credentials may not read the account."""
    twilio.inject(Fault(status=403))
    result = await run_once(check(twilio.url))
    assert_failed(result, "refused access", "403", permanent=True)


async def test_it_fails_permanently_when_the_account_does_not_exist(twilio: FakeTwilio) -> None:
    """An account SID Twilio does not know (404) is a configuration error."""
    twilio.inject(Fault(status=404))
    result = await run_once(check(twilio.url))
    assert_failed(result, "has no account", "404", permanent=True)


async def test_it_fails_and_may_retry_when_rate_limited(twilio: FakeTwilio) -> None:
    """429 fails but is not permanent."""
    twilio.inject(Fault(status=429))
    result = await run_once(check(twilio.url))
    assert_failed(result, "rate-limiting", permanent=False)


@pytest.mark.parametrize("status", [500, 503])
async def test_it_fails_when_twilio_is_failing(twilio: FakeTwilio, status: int) -> None:
    """5xx fails with a sentence pointing at an outage on Twilio's side."""
    twilio.inject(Fault(status=status))
    result = await run_once(check(twilio.url))
    assert_failed(result, f"HTTP {status}", "outage", permanent=False)


async def test_it_fails_when_the_body_is_not_json(twilio: FakeTwilio) -> None:
    """An HTML page where JSON should be fails and says so."""
    twilio.inject(Fault(raw=b"<html><body>Gateway</body></html>"))
    result = await run_once(check(twilio.url))
    assert_failed(result, "not JSON")


async def test_it_fails_when_the_body_has_the_wrong_shape(twilio: FakeTwilio) -> None:
    """JSON without a status field fails instead of passing."""
    twilio.inject(Fault(json={"sid": SID, "friendly_name": "x"}))
    result = await run_once(check(twilio.url))
    assert_failed(result, "'status'")


async def test_it_fails_when_twilio_answers_slower_than_the_timeout(twilio: FakeTwilio) -> None:
    """A response slower than the timeout fails at the timeout."""
    twilio.inject(Fault(delay=1.5))
    result = await run_once(check(twilio.url, timeout=0.3))
    assert_failed(result, "within", permanent=False)


async def test_it_fails_when_the_connection_is_refused() -> None:
    """Nothing listening: the message says the connection was refused."""
    result = await run_once(check(f"http://127.0.0.1:{refused_port()}"))
    assert_failed(result, "refused the connection", permanent=False)


async def test_it_fails_when_the_port_is_black_holed() -> None:
    """A port that accepts and never answers fails at the timeout."""
    with black_hole() as hole:
        result = await run_once(check(f"http://127.0.0.1:{hole.port}", timeout=0.3))
    assert_failed(result, permanent=False)
