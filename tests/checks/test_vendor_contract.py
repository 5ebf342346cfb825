"""What every vendor check does when its vendor fails, run against each vendor's fake.

The vendor checks share one way of failing: a refusal (403) or a missing resource (404) is a
permanent configuration error, rate limiting (429) and outages (5xx) may pass with a retry, a body
that is not JSON or has the wrong shape fails and says so, and a slow, refused or black-holed
endpoint fails at the timeout with a sentence saying which. Each :class:`Vendor` below says how to
start the vendor's fake and build its check, and the words its messages must contain; the cases
only a single vendor has (suspended accounts, quota, tokens) stay in that vendor's test file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.checks.base import Check, Status
from app.checks.google_calendar import GoogleCalendarCheck
from app.checks.openai import OpenAICheck
from app.checks.statuspage import StatuspageCheck
from app.checks.twilio import TwilioCheck
from app.checks.vapi import VapiCheck
from app.checks.whatsapp import WhatsAppCheck
from tests.credentials import fake_secret
from tests.fakes.base import FakeApi, Fault
from tests.fakes.google import Calendar, FakeGoogle
from tests.fakes.openai import FakeOpenAI
from tests.fakes.runs import assert_failed, run_once
from tests.fakes.statuspage import FakeStatuspage
from tests.fakes.twilio import Account, FakeTwilio
from tests.fakes.vapi import FakeVapi
from tests.fakes.whatsapp import VERSION, FakeWhatsApp
from tests.servers import black_hole, refused_port

# Builds the vendor's check with the given timeout; ``base_url`` None means "at the fake", any
# other URL means every endpoint of the vendor (token endpoints included) lives there.
MakeCheck = Callable[..., Check[Any]]


@dataclass(frozen=True)
class Vendor:
    """One vendor's fake, its check, and what its failure messages must say."""

    name: str
    start: Callable[[], tuple[FakeApi, MakeCheck]]
    forbidden_says: tuple[str, ...]  # 403
    not_found_says: tuple[str, ...]  # 404
    not_json: bytes
    wrong_shape: Fault  # a JSON body missing what the check reads
    wrong_shape_says: str
    fault_path: str = ""  # the faults hit requests under this path only
    rate_limited: Status = Status.FAIL
    slow_timeout: float = 0.3
    # Advice that would be wrong for this vendor in its 404 and 5xx sentences.
    never_says: tuple[str, ...] = ()

    def fault(self, **fields: Any) -> Fault:
        return Fault(path=self.fault_path, **fields)


def _twilio() -> tuple[FakeApi, MakeCheck]:
    sid, token = "AC" + "1f" * 16, fake_secret(length=32, alphabet="0123456789abcdef")
    fake = FakeTwilio()
    fake.add(Account(sid, token))

    def make(timeout: float = 2.0, base_url: str | None = None) -> Check[Any]:
        params = TwilioCheck.Params(
            account_sid=sid, auth_token=token, base_url=base_url or fake.url
        )
        return TwilioCheck("twilio", params, timeout=timeout)

    return fake, make


def _vapi() -> tuple[FakeApi, MakeCheck]:
    key = str(uuid.uuid4())
    fake = FakeVapi(key)
    fake.add_assistant("5b0a9d3c-1e2f-4a5b-8c7d-6e5f4a3b2c1d", "Receptionist")

    def make(timeout: float = 2.0, base_url: str | None = None) -> Check[Any]:
        params = VapiCheck.Params(api_key=key, base_url=base_url or fake.url)
        return VapiCheck("vapi", params, timeout=timeout)

    return fake, make


def _openai() -> tuple[FakeApi, MakeCheck]:
    key = fake_secret("sk-proj-", 40)
    fake = FakeOpenAI(key)

    def make(timeout: float = 2.0, base_url: str | None = None) -> Check[Any]:
        params = OpenAICheck.Params(api_key=key, base_url=base_url or fake.url)
        return OpenAICheck("openai", params, timeout=timeout)

    return fake, make


WHATSAPP_NUMBER = "106540352242922"


def _whatsapp() -> tuple[FakeApi, MakeCheck]:
    token = fake_secret("EAAG", 40)
    fake = FakeWhatsApp(token)
    fake.add_number(WHATSAPP_NUMBER)

    def make(timeout: float = 2.0, base_url: str | None = None) -> Check[Any]:
        params = WhatsAppCheck.Params(
            token=token,
            phone_number_id=WHATSAPP_NUMBER,
            base_url=base_url or fake.url,
            api_version=VERSION,
        )
        return WhatsAppCheck("whatsapp", params, timeout=timeout)

    return fake, make


GOOGLE_EMAIL = "drwatch@booking-prod.iam.gserviceaccount.com"
GOOGLE_CALENDAR = "c_8f1d2e3a4b5c@group.calendar.google.com"


def _google() -> tuple[FakeApi, MakeCheck]:
    fake = FakeGoogle()
    fake.add_calendar(Calendar(GOOGLE_CALENDAR, "Appointments", shared_with={GOOGLE_EMAIL}))
    key = json.dumps(fake.service_account_key(GOOGLE_EMAIL))

    def make(timeout: float = 2.0, base_url: str | None = None) -> Check[Any]:
        params = GoogleCalendarCheck.Params(
            credentials_json=key,
            calendar_id=GOOGLE_CALENDAR,
            base_url=base_url or fake.url,
            token_uri=f"{base_url}/token" if base_url else None,
        )
        return GoogleCalendarCheck("google-calendar", params, timeout=timeout)

    return fake, make


def _statuspage() -> tuple[FakeApi, MakeCheck]:
    fake = FakeStatuspage("Twilio")

    def make(timeout: float = 2.0, base_url: str | None = None) -> Check[Any]:
        params = StatuspageCheck.Params(base_url=base_url or fake.url)
        return StatuspageCheck("twilio-status", params, timeout=timeout)

    return fake, make


VENDORS = [
    Vendor(
        "twilio",
        _twilio,
        forbidden_says=("refused access", "403"),
        not_found_says=("has no account", "404"),
        not_json=b"<html><body>Gateway</body></html>",
        wrong_shape=Fault(json={"sid": "AC" + "1f" * 16, "friendly_name": "x"}),
        wrong_shape_says="'status'",
    ),
    Vendor(
        "vapi",
        _vapi,
        forbidden_says=("403",),
        not_found_says=("404",),
        not_json=b"<html>maintenance</html>",
        wrong_shape=Fault(json={"results": []}),
        wrong_shape_says="other than a list",
    ),
    Vendor(
        "openai",
        _openai,
        forbidden_says=("403",),
        not_found_says=("404",),
        not_json=b"upstream connect error",
        wrong_shape=Fault(json={"object": "list"}),
        wrong_shape_says="'data'",
        # A plain rate limit only warns; an exhausted quota (test_openai.py) fails.
        rate_limited=Status.WARN,
    ),
    Vendor(
        "whatsapp",
        _whatsapp,
        forbidden_says=("permission",),
        # Graph answers 404 for a phone_number_id it does not know.
        not_found_says=(WHATSAPP_NUMBER,),
        not_json=b"<!DOCTYPE html><title>Error</title>",
        wrong_shape=Fault(json={"id": WHATSAPP_NUMBER, "verified_name": "Booking Service"}),
        wrong_shape_says="'status'",
    ),
    Vendor(
        "google_calendar",
        _google,
        # Both name the calendar and the account, so a person knows what to share with whom.
        forbidden_says=(GOOGLE_CALENDAR, GOOGLE_EMAIL),
        not_found_says=(GOOGLE_CALENDAR, GOOGLE_EMAIL),
        not_json=b"<html>Error 502</html>",
        wrong_shape=Fault(json={"token_type": "Bearer"}, path="/token"),
        wrong_shape_says="'access_token'",
        fault_path="/calendar/v3/calendars/",
        # Signing the assertion and the token exchange take part of the budget.
        slow_timeout=0.5,
    ),
    Vendor(
        "statuspage",
        _statuspage,
        forbidden_says=("403",),
        not_found_says=("404",),
        not_json=b"<html>status</html>",
        wrong_shape=Fault(json={"page": {"name": "Twilio"}, "status": {"description": "ok"}}),
        wrong_shape_says="'indicator'",
        # A status page has no id in the configuration, and is itself the status page.
        never_says=("id in the configuration", "check its status page"),
    ),
]


@dataclass
class Running:
    vendor: Vendor
    fake: FakeApi
    check: MakeCheck


@pytest.fixture(scope="module", params=VENDORS, ids=[v.name for v in VENDORS])
def running(request: pytest.FixtureRequest) -> Iterator[Running]:
    vendor: Vendor = request.param
    fake, make = vendor.start()
    yield Running(vendor, fake, make)
    fake.stop()


@pytest.fixture
def vendor(running: Running) -> Iterator[Running]:
    running.fake.reset()
    yield running
    running.fake.reset()


async def test_a_healthy_vendor_passes(vendor: Running) -> None:
    """The fake as set up answers normally: the failures below come from the faults alone."""
    result = await run_once(vendor.check())
    assert result.status is Status.PASS, result.output


async def test_it_fails_permanently_on_403(vendor: Running) -> None:
    """403: the credentials may not read the resource; retrying cannot help."""
    vendor.fake.inject(vendor.vendor.fault(status=403))
    result = await run_once(vendor.check())
    assert_failed(result, *vendor.vendor.forbidden_says, permanent=True)


async def test_it_fails_permanently_on_404(vendor: Running) -> None:
    """404: the configured account, resource or URL does not exist."""
    vendor.fake.inject(vendor.vendor.fault(status=404))
    result = await run_once(vendor.check())
    assert_failed(result, *vendor.vendor.not_found_says, permanent=True)
    for wrong in vendor.vendor.never_says:
        assert wrong not in result.output


async def test_it_may_retry_when_rate_limited(vendor: Running) -> None:
    """429 says the vendor is rate-limiting, and is never permanent."""
    vendor.fake.inject(vendor.vendor.fault(status=429))
    result = await run_once(vendor.check())
    assert result.status is vendor.vendor.rate_limited, result.output
    assert "rate-limiting" in result.output
    assert result.permanent is False


@pytest.mark.parametrize("status", [500, 503])
async def test_it_fails_when_the_vendor_is_failing(vendor: Running, status: int) -> None:
    """5xx fails, not permanently, with a sentence pointing at an outage on the vendor's side."""
    vendor.fake.inject(vendor.vendor.fault(status=status))
    result = await run_once(vendor.check())
    assert_failed(result, f"HTTP {status}", "outage", permanent=False)
    for wrong in vendor.vendor.never_says:
        assert wrong not in result.output


async def test_it_fails_when_the_body_is_not_json(vendor: Running) -> None:
    """A page where JSON should be (a proxy's error page) fails and says so."""
    vendor.fake.inject(vendor.vendor.fault(raw=vendor.vendor.not_json))
    result = await run_once(vendor.check())
    assert_failed(result, "not JSON")


async def test_it_fails_when_the_body_has_the_wrong_shape(vendor: Running) -> None:
    """JSON without the field the check reads fails, naming the field, instead of passing."""
    vendor.fake.inject(vendor.vendor.wrong_shape)
    result = await run_once(vendor.check())
    assert_failed(result, vendor.vendor.wrong_shape_says)


async def test_it_fails_when_the_vendor_answers_slower_than_the_timeout(vendor: Running) -> None:
    """A response slower than the timeout fails at the timeout."""
    vendor.fake.inject(vendor.vendor.fault(delay=1.5))
    result = await run_once(vendor.check(vendor.vendor.slow_timeout))
    assert_failed(result, "within", permanent=False)


async def test_it_fails_when_the_connection_is_refused(vendor: Running) -> None:
    """Nothing listening: the message says the connection was refused."""
    result = await run_once(vendor.check(2.0, f"http://127.0.0.1:{refused_port()}"))
    assert_failed(result, "refused the connection", permanent=False)


async def test_it_fails_when_the_port_is_black_holed(vendor: Running) -> None:
    """A port that accepts and never answers fails at the timeout."""
    with black_hole() as hole:
        check = vendor.check(vendor.vendor.slow_timeout, f"http://127.0.0.1:{hole.port}")
        result = await run_once(check)
    assert_failed(result, "within", permanent=False)
