"""The whatsapp check against a real HTTP server speaking the Graph API's phone number node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.checks.base import Status
from app.checks.whatsapp import WhatsAppCheck
from tests.credentials import fake_secret
from tests.fakes.runs import assert_failed, assert_secret_absent, run_once
from tests.fakes.whatsapp import VERSION, FakeWhatsApp

TOKEN = fake_secret("EAAG", 40)
NUMBER = "106540352242922"
FLAGGED = "106540352242923"
RED = "106540352242924"
DISCONNECTED = "106540352242925"


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeWhatsApp]:
    fake = FakeWhatsApp(TOKEN)
    fake.add_number(NUMBER)
    fake.add_number(FLAGGED, status="FLAGGED", quality="RED")
    fake.add_number(RED, quality="RED")
    fake.add_number(DISCONNECTED, status="DISCONNECTED")
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _clean(graph: FakeWhatsApp) -> Iterator[None]:
    graph.reset()
    yield
    graph.reset()


def check(
    base_url: str,
    *,
    token: str = TOKEN,
    number: str = NUMBER,
    timeout: float = 2.0,
    **params: Any,
) -> WhatsAppCheck:
    return WhatsAppCheck(
        "whatsapp",
        WhatsAppCheck.Params(
            token=token, phone_number_id=number, base_url=base_url, api_version=VERSION, **params
        ),
        timeout=timeout,
    )


async def test_it_passes_when_the_number_is_connected_and_green(graph: FakeWhatsApp) -> None:
    """CONNECTED with quality GREEN passes; the request asks for status and quality fields."""
    result = await run_once(check(graph.url))
    assert result.status is Status.PASS, result.output
    request = graph.requests[-1]
    assert request.path == f"/{VERSION}/{NUMBER}"
    assert {"status", "quality_rating"} <= set(request.query["fields"].split(","))
    assert result.details["quality_rating"] == "GREEN"


async def test_it_warns_when_the_quality_rating_is_red(graph: FakeWhatsApp) -> None:
    """RED quality warns: Meta may limit or disconnect the number."""
    result = await run_once(check(graph.url, number=RED))
    assert result.status is Status.WARN, result.output
    assert "RED" in result.output


@pytest.mark.parametrize("number", [FLAGGED, DISCONNECTED])
async def test_it_fails_when_the_number_is_flagged_or_disconnected(
    graph: FakeWhatsApp, number: str
) -> None:
    """FLAGGED and DISCONNECTED numbers fail."""
    result = await run_once(check(graph.url, number=number))
    assert_failed(result, "not delivered")


async def test_it_fails_permanently_when_the_token_is_invalid(graph: FakeWhatsApp) -> None:
    """Graph error 190 is permanent and the token stays out of the message."""
    wrong = fake_secret("EAAG", 40)
    result = await run_once(check(graph.url, token=wrong))
    assert_failed(result, "access token", permanent=True)
    assert_secret_absent(result, wrong, TOKEN)


async def test_it_fails_permanently_when_the_number_does_not_exist(graph: FakeWhatsApp) -> None:
    """Graph's 'object does not exist' (code 100, subcode 33) is a wrong phone_number_id."""
    result = await run_once(check(graph.url, number="999999999999999"))
    assert_failed(result, "999999999999999", "phone_number_id", permanent=True)
