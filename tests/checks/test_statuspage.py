"""The statuspage check against a real HTTP server speaking the Statuspage v2 public API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.checks.base import Status
from app.checks.statuspage import StatuspageCheck
from app.config import parse_config
from app.errors import ConfigError
from tests.fakes.base import Fault
from tests.fakes.runs import assert_failed, run_once
from tests.fakes.statuspage import FakeStatuspage


@pytest.fixture(scope="module")
def page() -> Iterator[FakeStatuspage]:
    fake = FakeStatuspage("Twilio")
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _clean(page: FakeStatuspage) -> Iterator[None]:
    page.reset()
    page.indicator = "none"
    page.components = {"REST API": "operational", "SMS": "operational", "Voice": "operational"}
    yield
    page.reset()


def check(base_url: str, *, timeout: float = 2.0, **params: Any) -> StatuspageCheck:
    return StatuspageCheck(
        "twilio-status", StatuspageCheck.Params(base_url=base_url, **params), timeout=timeout
    )


async def test_it_passes_when_the_indicator_is_none(page: FakeStatuspage) -> None:
    """Indicator none (All Systems Operational) passes."""
    result = await run_once(check(page.url))
    assert result.status is Status.PASS, result.output
    assert "All Systems Operational" in result.output
    assert (page.requests[-1].method, page.requests[-1].path) == ("GET", "/api/v2/status.json")


async def test_it_warns_when_the_indicator_is_minor(page: FakeStatuspage) -> None:
    """Indicator minor warns."""
    page.indicator = "minor"
    result = await run_once(check(page.url))
    assert result.status is Status.WARN, result.output


@pytest.mark.parametrize("indicator", ["major", "critical"])
async def test_it_fails_when_the_indicator_is_major_or_critical(
    page: FakeStatuspage, indicator: str
) -> None:
    """Indicators major and critical fail, naming the page."""
    page.indicator = indicator
    result = await run_once(check(page.url))
    assert_failed(result, "Twilio", indicator)


async def test_it_judges_only_the_configured_components(page: FakeStatuspage) -> None:
    """With components, an outage of another component does not matter."""
    page.indicator = "major"
    page.components["Voice"] = "major_outage"
    result = await run_once(check(page.url, components=["SMS", "REST API"]))
    assert result.status is Status.PASS, result.output
    assert page.requests[-1].path == "/api/v2/components.json"


async def test_it_warns_when_a_component_is_degraded(page: FakeStatuspage) -> None:
    """A configured component with degraded performance warns."""
    page.components["SMS"] = "degraded_performance"
    result = await run_once(check(page.url, components=["sms"]))
    assert result.status is Status.WARN, result.output
    assert "SMS is degraded performance" in result.output


async def test_it_fails_when_a_component_has_an_outage(page: FakeStatuspage) -> None:
    """A configured component in partial outage fails."""
    page.components["SMS"] = "partial_outage"
    result = await run_once(check(page.url, components=["SMS"]))
    assert_failed(result, "SMS is partial outage")


async def test_it_fails_permanently_when_a_component_is_unknown(page: FakeStatuspage) -> None:
    """A component name the page does not list is a configuration error."""
    result = await run_once(check(page.url, components=["Fax"]))
    assert_failed(result, "'Fax'", "REST API", permanent=True)


def test_it_needs_a_base_url() -> None:
    """statuspage has no default page: the configuration must name one."""
    with pytest.raises(ConfigError, match=r"checks\.0\.params\.base_url"):
        parse_config({"checks": [{"name": "s", "type": "statuspage", "params": {}}]})


async def test_it_fails_permanently_when_the_page_needs_credentials(page: FakeStatuspage) -> None:
    """A page made private (401) fails permanently: public pages need no credentials."""
    page.inject(Fault(status=401))
    result = await run_once(check(page.url))
    assert_failed(result, "401", permanent=True)
