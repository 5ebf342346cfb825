"""The google_calendar check against real HTTP servers: Google's token endpoint (JWT-bearer) and
the Calendar API's calendars resource.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from app.checks.base import Status
from app.checks.google_calendar import GoogleCalendarCheck
from tests.fakes.base import Fault
from tests.fakes.google import Calendar, FakeGoogle
from tests.fakes.runs import assert_failed, assert_secret_absent, run_once
from tests.servers import black_hole

EMAIL = "drwatch@booking-prod.iam.gserviceaccount.com"
CALENDAR = "c_8f1d2e3a4b5c@group.calendar.google.com"
CALENDAR_PATH = "/calendar/v3/calendars/"


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle()
    fake.add_calendar(Calendar(CALENDAR, "Appointments", shared_with={EMAIL}))
    fake.add_calendar(Calendar("private@example.com", "Private"))
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def key(google: FakeGoogle) -> dict[str, Any]:
    return google.service_account_key(EMAIL)


@pytest.fixture(autouse=True)
def _clean(google: FakeGoogle) -> Iterator[None]:
    google.reset()
    yield
    google.reset()


def check(
    google: FakeGoogle,
    key: dict[str, Any],
    *,
    calendar: str = CALENDAR,
    base_url: str | None = None,
    timeout: float = 2.0,
    **params: Any,
) -> GoogleCalendarCheck:
    return GoogleCalendarCheck(
        "google-calendar",
        GoogleCalendarCheck.Params(
            credentials_json=json.dumps(key),
            calendar_id=calendar,
            base_url=base_url or google.url,
            **params,
        ),
        timeout=timeout,
    )


async def test_it_passes_when_the_service_account_can_read_the_calendar(
    google: FakeGoogle, key: dict[str, Any]
) -> None:
    """A signed JWT is exchanged for a token, then the calendar is read with it."""
    result = await run_once(check(google, key))
    assert result.status is Status.PASS, result.output
    assert "Appointments" in result.output
    token_request, calendar_request = google.requests
    assert (token_request.method, token_request.path) == ("POST", "/token")
    assert calendar_request.method == "GET"
    assert unquote(calendar_request.path) == CALENDAR_PATH + CALENDAR
    assert_secret_absent(result, key["private_key"], json.dumps(key))


async def test_it_reads_the_key_from_a_file(
    google: FakeGoogle, key: dict[str, Any], tmp_path: Path
) -> None:
    """credentials_file (GOOGLE_APPLICATION_CREDENTIALS) works like credentials_json."""
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    params = GoogleCalendarCheck.Params(
        credentials_file=path, calendar_id=CALENDAR, base_url=google.url
    )
    result = await run_once(GoogleCalendarCheck("gc", params, timeout=2.0))
    assert result.status is Status.PASS, result.output


async def test_it_caches_the_token_until_shortly_before_it_expires(
    google: FakeGoogle, key: dict[str, Any]
) -> None:
    """Two runs share one token exchange."""
    calendar_check = check(google, key)
    issued_before = google.tokens_issued
    try:
        for _ in range(2):
            result = await calendar_check.run()
            assert result.status is Status.PASS, result.output
    finally:
        await calendar_check.close()
    assert google.tokens_issued == issued_before + 1
    assert [r.path for r in google.requests].count("/token") == 1


async def test_it_gets_a_new_token_when_the_cached_one_is_about_to_expire(
    google: FakeGoogle, key: dict[str, Any]
) -> None:
    """A token that expires within the refresh margin is not reused."""
    google.token_lifetime = 60
    calendar_check = check(google, key)
    issued_before = google.tokens_issued
    try:
        for _ in range(2):
            result = await calendar_check.run()
            assert result.status is Status.PASS, result.output
    finally:
        google.token_lifetime = 3599
        await calendar_check.close()
    assert google.tokens_issued == issued_before + 2


async def test_it_fails_permanently_when_google_refuses_the_key(google: FakeGoogle) -> None:
    """A deleted key (invalid_grant) is permanent; the message names the account, not the key."""
    unknown = google.service_account_key(EMAIL, registered=False)
    result = await run_once(check(google, unknown))
    assert_failed(result, EMAIL, "invalid_grant", "new key", permanent=True)
    assert_secret_absent(result, unknown["private_key"], json.dumps(unknown))


async def test_it_fails_permanently_when_the_calendar_is_not_shared(
    google: FakeGoogle, key: dict[str, Any]
) -> None:
    """A calendar the account cannot see (404) names the calendar and the account's email."""
    result = await run_once(check(google, key, calendar="private@example.com"))
    assert_failed(result, "private@example.com", EMAIL, "shared", permanent=True)


@pytest.mark.parametrize("status", [500, 503])
async def test_it_fails_when_the_token_endpoint_is_failing(
    google: FakeGoogle, key: dict[str, Any], status: int
) -> None:
    """5xx from the token endpoint fails, not permanently (the calendar API's 5xx is in
    test_vendor_contract.py).
    """
    google.inject(Fault(status=status, path="/token"))
    result = await run_once(check(google, key))
    assert_failed(result, f"HTTP {status}", permanent=False)


async def test_it_fails_when_only_the_calendar_api_is_black_holed(
    google: FakeGoogle, key: dict[str, Any]
) -> None:
    """A token from a working endpoint, then a black-holed calendar API: fail at the timeout."""
    with black_hole() as hole:
        result = await run_once(
            check(google, key, base_url=f"http://127.0.0.1:{hole.port}", timeout=0.5)
        )
    assert_failed(result, "within", permanent=False)


async def test_it_fails_permanently_when_the_key_file_is_missing(tmp_path: Path) -> None:
    """A key file that is not there is a configuration error naming the path."""
    path = tmp_path / "missing.json"
    params = GoogleCalendarCheck.Params(credentials_file=path, calendar_id=CALENDAR)
    result = await run_once(GoogleCalendarCheck("gc", params, timeout=2.0))
    assert_failed(result, str(path), permanent=True)
