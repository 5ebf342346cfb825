"""The http check against real HTTP and HTTPS servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.checks.base import Status
from app.checks.http import HttpCheck
from app.config import parse_config
from app.errors import ConfigError
from tests.fakes.base import Fault
from tests.fakes.endpoint import Endpoint
from tests.fakes.runs import assert_failed, assert_secret_absent, run_once
from tests.fakes.tls import TestCA, self_signed
from tests.servers import black_hole, refused_port

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def site() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean(site: Endpoint) -> Iterator[None]:
    site.reset()
    yield
    site.reset()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def secure_sites(ca: TestCA) -> Iterator[dict[str, Endpoint]]:
    leaves = {
        "valid": ca.leaf(not_after=NOW + dt.timedelta(days=60)),
        "expired": ca.leaf(
            not_before=NOW - dt.timedelta(days=90), not_after=NOW - dt.timedelta(days=1)
        ),
        "self_signed": self_signed(),
    }
    servers = {
        name: Endpoint(tls=leaf.server_context(ca.directory, name)) for name, leaf in leaves.items()
    }
    yield servers
    for server in servers.values():
        server.stop()


def check(url: str, *, timeout: float = 2.0, **params: Any) -> HttpCheck:
    return HttpCheck("web", HttpCheck.Params(url=url, **params), timeout=timeout)


async def test_it_passes_on_200_and_reports_status_and_latency(site: Endpoint) -> None:
    """200 passes; the result carries the status code and the latency in seconds."""
    started = time.perf_counter()
    result = await run_once(check(f"{site.url}/health"))
    elapsed = time.perf_counter() - started
    assert result.status is Status.PASS, result.output
    assert result.details["status_code"] == 200
    assert result.observed_unit == "s"
    # The latency is part of the run, which is part of the call.
    assert result.observed_value is not None
    assert 0 < result.observed_value <= result.duration <= elapsed
    assert "tls_cert_expiry_timestamp_seconds" not in result.details


@pytest.mark.parametrize("status", [403, 404, 429, 500, 503])
async def test_it_fails_on_an_unexpected_status(site: Endpoint, status: int) -> None:
    """Statuses outside 200-399 fail and name the status and the expectation."""
    result = await run_once(check(f"{site.url}/status/{status}"))
    assert_failed(result, f"HTTP {status}", "expected 200-399")
    assert result.details["status_code"] == status


async def test_it_accepts_configured_status_codes_and_ranges(site: Endpoint) -> None:
    """expected_status takes codes and ranges."""
    url = f"{site.url}/status/503"
    assert (await run_once(check(url, expected_status=[503]))).status is Status.PASS
    assert (await run_once(check(url, expected_status="200-299, 500-503"))).status is Status.PASS
    result = await run_once(check(f"{site.url}/health", expected_status=["500-599"]))
    assert_failed(result, "expected 500-599")


async def test_it_follows_redirects_unless_told_not_to(site: Endpoint) -> None:
    """Redirects are followed by default; with follow_redirects off the 302 itself is judged."""
    result = await run_once(check(f"{site.url}/redirect", expected_status=[200]))
    assert result.status is Status.PASS, result.output
    result = await run_once(
        check(f"{site.url}/redirect", expected_status=[200], follow_redirects=False)
    )
    assert_failed(result, "HTTP 302")


async def test_it_checks_that_the_body_contains_a_string(site: Endpoint) -> None:
    """body_contains passes when present and fails when absent."""
    assert (await run_once(check(f"{site.url}/text", body_contains="booking"))).status is (
        Status.PASS
    )
    result = await run_once(check(f"{site.url}/text", body_contains="welcome"))
    assert_failed(result, "does not contain 'welcome'")


async def test_it_checks_the_body_against_a_regex(site: Endpoint) -> None:
    """body_regex must match somewhere in the body."""
    assert (await run_once(check(f"{site.url}/text", body_regex=r"hello \w+"))).status is (
        Status.PASS
    )
    result = await run_once(check(f"{site.url}/text", body_regex=r"^goodbye"))
    assert_failed(result, "does not match")


async def test_it_compares_a_json_path_with_a_value(site: Endpoint) -> None:
    """json_path + json_equals passes on equality and fails otherwise, showing both values."""
    url = f"{site.url}/health"
    ok = await run_once(check(url, json_path="$.checks[0].state", json_equals="up"))
    assert ok.status is Status.PASS, ok.output
    result = await run_once(check(url, json_path="$.status", json_equals="healthy"))
    assert_failed(result, '"ok"', '"healthy"')


async def test_it_fails_when_the_json_path_is_missing(site: Endpoint) -> None:
    """A body of the wrong shape (no value at the path) fails."""
    result = await run_once(check(f"{site.url}/health", json_path="$.database.state"))
    assert_failed(result, "no value at $.database.state")


async def test_it_fails_when_the_body_is_not_json(site: Endpoint) -> None:
    """A JSON path on a body that is not JSON fails."""
    site.inject(Fault(raw=b"<html>oops</html>"))
    result = await run_once(check(f"{site.url}/health", json_path="$.status", json_equals="ok"))
    assert_failed(result, "not JSON")


async def test_it_warns_when_slower_than_latency_warn(site: Endpoint) -> None:
    """An answer slower than latency_warn warns."""
    site.inject(Fault(delay=0.3))
    result = await run_once(check(f"{site.url}/health", latency_warn="50ms"))
    assert result.status is Status.WARN, result.output
    assert "slower than the" in result.output


async def test_it_sends_the_bearer_token_without_showing_it(site: Endpoint) -> None:
    """bearer_token is sent; a wrong one fails with 401 and never appears in the output."""
    result = await run_once(check(f"{site.url}/private", bearer_token=Endpoint.token))
    assert result.status is Status.PASS, result.output
    wrong = "wrong-bearer-token-77aa88bb"
    result = await run_once(check(f"{site.url}/private", bearer_token=wrong))
    assert_failed(result, "HTTP 401")
    assert_secret_absent(result, wrong, Endpoint.token)


async def test_it_sends_basic_auth(site: Endpoint) -> None:
    """basic_auth is sent as HTTP basic credentials."""
    user, password = Endpoint.basic
    params = {"basic_auth": {"username": user, "password": password}}
    result = await run_once(check(f"{site.url}/basic", **params))
    assert result.status is Status.PASS, result.output
    assert_secret_absent(result, password)


async def test_it_sends_the_method_and_body(site: Endpoint) -> None:
    """method and body are sent as configured."""
    result = await run_once(
        check(f"{site.url}/echo", method="post", body="ping-42", body_contains="ping-42")
    )
    assert result.status is Status.PASS, result.output
    assert site.requests[-1].method == "POST"


async def test_it_keeps_its_connection_between_runs_until_closed(site: Endpoint) -> None:
    """Runs reuse one connection (no new handshake); after close() a run opens a new one."""
    web = check(f"{site.url}/health")
    try:
        for _ in range(3):
            assert (await web.run()).status is Status.PASS
        assert len({r.peer for r in site.requests}) == 1
        await web.close()
        assert (await web.run()).status is Status.PASS
        assert len({r.peer for r in site.requests}) == 2
    finally:
        await web.close()


async def test_it_fails_permanently_when_the_ca_file_cannot_be_read(tmp_path: Path) -> None:
    """A ca_file that is not there is a configuration error naming the file."""
    missing = tmp_path / "missing-ca.pem"
    result = await run_once(check("https://127.0.0.1:1/", ca_file=missing))
    assert_failed(result, str(missing), permanent=True)


async def test_it_fails_when_slower_than_the_timeout(site: Endpoint) -> None:
    """A response slower than the timeout fails."""
    site.inject(Fault(delay=1.5))
    result = await run_once(check(f"{site.url}/health", timeout=0.3))
    assert_failed(result, "within", permanent=False)


async def test_it_fails_when_the_connection_is_refused() -> None:
    """Nothing listening: refused."""
    result = await run_once(check(f"http://127.0.0.1:{refused_port()}/health"))
    assert_failed(result, "refused the connection")


async def test_it_fails_when_the_port_is_black_holed() -> None:
    """A black hole fails at the timeout."""
    with black_hole() as hole:
        result = await run_once(check(f"http://127.0.0.1:{hole.port}/", timeout=0.3))
    assert_failed(result, "within", permanent=False)


async def test_it_reports_certificate_expiry_on_https(
    secure_sites: dict[str, Endpoint], ca: TestCA
) -> None:
    """On https, the leaf certificate's notAfter goes into details."""
    url = f"{secure_sites['valid'].url}/health"
    result = await run_once(check(url, ca_file=ca.ca_file))
    assert result.status is Status.PASS, result.output
    expiry = result.details["tls_cert_expiry_timestamp_seconds"]
    assert expiry == pytest.approx((NOW + dt.timedelta(days=60)).timestamp(), abs=1)


async def test_it_fails_on_an_expired_certificate(
    secure_sites: dict[str, Endpoint], ca: TestCA
) -> None:
    """An expired certificate fails the request with a sentence saying so."""
    result = await run_once(check(f"{secure_sites['expired'].url}/health", ca_file=ca.ca_file))
    assert_failed(result, "expired")


async def test_it_fails_on_an_untrusted_certificate_unless_verification_is_off(
    secure_sites: dict[str, Endpoint], ca: TestCA
) -> None:
    """A self-signed certificate fails; with verify_tls off the request passes."""
    url = f"{secure_sites['self_signed'].url}/health"
    assert_failed(await run_once(check(url, ca_file=ca.ca_file)), "not trusted")
    result = await run_once(check(url, verify_tls=False))
    assert result.status is Status.PASS, result.output
    # self_signed() issues for 90 days from when the fixture made it.
    expiry = result.details["tls_cert_expiry_timestamp_seconds"]
    assert expiry == pytest.approx((NOW + dt.timedelta(days=90)).timestamp(), abs=600)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"url": "ftp://example.com"}, "url"),
        ({"url": "https://example.com", "expected_status": ["2xx"]}, "expected_status"),
        ({"url": "https://example.com", "body_regex": "("}, "body_regex"),
        ({"url": "https://example.com", "json_equals": 1}, "params"),
        ({"url": "https://example.com", "method": "FETCH"}, "method"),
    ],
)
def test_it_rejects_invalid_parameters(params: dict[str, Any], field: str) -> None:
    """Bad parameters stop start-up with the field path."""
    with pytest.raises(ConfigError, match=rf"checks\.0\.params\b.*{field}|{field}"):
        parse_config({"checks": [{"name": "w", "type": "http", "params": params}]})


def test_it_defaults_to_critical() -> None:
    """http guards our own endpoints, so it defaults to critical."""
    config = parse_config(
        {"checks": [{"name": "w", "type": "http", "params": {"url": "https://example.com"}}]}
    )
    assert config.checks[0].criticality == "critical"
