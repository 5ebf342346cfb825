"""The tls check against real TLS servers whose certificates are made at test time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.checks.base import Status
from app.checks.tls import TlsCheck
from app.config import parse_config
from app.errors import ConfigError
from tests.fakes.endpoint import Endpoint
from tests.fakes.runs import assert_failed, run_once
from tests.fakes.tls import Leaf, TestCA, self_signed
from tests.servers import black_hole, refused_port

NOW = dt.datetime.now(dt.UTC)


class Servers:
    def __init__(self, directory: Path) -> None:
        self.ca = TestCA(directory)
        self.other_ca = TestCA(directory / "other")
        self.leaves: dict[str, Leaf] = {
            "valid": self.ca.leaf(not_after=NOW + dt.timedelta(days=90)),
            "expiring": self.ca.leaf(not_after=NOW + dt.timedelta(days=5)),
            "nearly_expired": self.ca.leaf(not_after=NOW + dt.timedelta(days=2)),
            "expired": self.ca.leaf(
                not_before=NOW - dt.timedelta(days=90), not_after=NOW - dt.timedelta(days=2)
            ),
            "wrong_name": self.ca.leaf("shop.example.net", not_after=NOW + dt.timedelta(days=90)),
            "localhost_only": self.ca.leaf("localhost", not_after=NOW + dt.timedelta(days=90)),
            "self_signed": self_signed(),
            "untrusted": self.other_ca.leaf(not_after=NOW + dt.timedelta(days=90)),
        }
        self.servers = {
            name: Endpoint(tls=leaf.server_context(directory, name))
            for name, leaf in self.leaves.items()
        }

    def port(self, name: str) -> int:
        return self.servers[name].port

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    directory = tmp_path_factory.mktemp("tls")
    (directory / "other").mkdir()
    servers = Servers(directory)
    yield servers
    servers.stop()


def check(port: int, ca_file: Path | None, *, timeout: float = 2.0, **params: Any) -> TlsCheck:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "ca_file": ca_file, **params}
    return TlsCheck("tls", TlsCheck.Params(**values), timeout=timeout)


async def test_it_passes_and_reports_the_expiry_of_a_valid_certificate(tls: Servers) -> None:
    """A trusted certificate valid for 90 days passes and reports its notAfter."""
    result = await run_once(check(tls.port("valid"), tls.ca.ca_file))
    assert result.status is Status.PASS, result.output
    expiry = result.details["tls_cert_expiry_timestamp_seconds"]
    assert expiry == pytest.approx(tls.leaves["valid"].not_after.timestamp(), abs=1)
    assert result.observed_unit == "d"
    assert result.observed_value == pytest.approx(90, abs=1)


async def test_it_warns_when_the_certificate_expires_in_five_days(tls: Servers) -> None:
    """Five days left is below warn_days (14): warn."""
    result = await run_once(check(tls.port("expiring"), tls.ca.ca_file))
    assert result.status is Status.WARN, result.output
    assert "renewal" in result.output


async def test_it_fails_when_fewer_than_fail_days_remain(tls: Servers) -> None:
    """Two days left is below fail_days (3): fail."""
    result = await run_once(check(tls.port("nearly_expired"), tls.ca.ca_file))
    assert_failed(result, "renew it now")


async def test_it_follows_configured_thresholds(tls: Servers) -> None:
    """warn_days and fail_days move the verdict."""
    result = await run_once(check(tls.port("expiring"), tls.ca.ca_file, warn_days=3, fail_days=1))
    assert result.status is Status.PASS, result.output
    result = await run_once(check(tls.port("valid"), tls.ca.ca_file, warn_days=120, fail_days=100))
    assert result.status is Status.FAIL, result.output


async def test_it_fails_when_the_certificate_has_expired(tls: Servers) -> None:
    """An expired certificate fails, says when it expired, and still reports the expiry."""
    result = await run_once(check(tls.port("expired"), tls.ca.ca_file))
    assert_failed(result, "expired", "days ago")
    expiry = result.details["tls_cert_expiry_timestamp_seconds"]
    assert expiry == pytest.approx(tls.leaves["expired"].not_after.timestamp(), abs=1)


async def test_it_fails_when_the_certificate_is_for_another_name(tls: Servers) -> None:
    """A certificate for shop.example.net served at 127.0.0.1 fails the name check."""
    result = await run_once(check(tls.port("wrong_name"), tls.ca.ca_file))
    assert_failed(result, "not issued for that name")


async def test_it_verifies_the_configured_server_name(tls: Servers) -> None:
    """server_name is sent as SNI and is the name verified."""
    port = tls.port("localhost_only")
    assert (await run_once(check(port, tls.ca.ca_file))).status is Status.FAIL
    result = await run_once(check(port, tls.ca.ca_file, server_name="localhost"))
    assert result.status is Status.PASS, result.output


async def test_it_fails_when_the_certificate_is_self_signed(tls: Servers) -> None:
    """A self-signed certificate is not trusted."""
    result = await run_once(check(tls.port("self_signed"), tls.ca.ca_file))
    assert_failed(result, "not trusted")


async def test_it_fails_when_the_issuer_is_not_trusted(tls: Servers) -> None:
    """A certificate from a CA outside the trust store fails."""
    result = await run_once(check(tls.port("untrusted"), tls.ca.ca_file))
    assert_failed(result, "not trusted")


async def test_it_uses_the_system_trust_store_by_default(tls: Servers) -> None:
    """Without ca_file, a certificate from the test CA is not trusted."""
    result = await run_once(check(tls.port("valid"), None))
    assert_failed(result, "not trusted")


async def test_it_fails_when_the_port_does_not_speak_tls() -> None:
    """A plain HTTP server on the port fails the handshake."""
    plain = Endpoint()
    try:
        result = await run_once(check(plain.port, None))
    finally:
        plain.stop()
    assert_failed(result, "handshake")


async def test_it_fails_when_the_connection_is_refused() -> None:
    """Nothing listening: refused."""
    result = await run_once(check(refused_port(), None))
    assert_failed(result, "refused the connection")


async def test_it_fails_when_the_port_is_black_holed() -> None:
    """A port that never answers the handshake fails at the timeout."""
    with black_hole() as hole:
        result = await run_once(check(hole.port, None, timeout=0.3))
    assert_failed(result, permanent=False)


def test_it_rejects_fail_days_above_warn_days() -> None:
    """fail_days > warn_days is a configuration error."""
    with pytest.raises(ConfigError, match="fail_days"):
        parse_config(
            {
                "checks": [
                    {
                        "name": "t",
                        "type": "tls",
                        "params": {"host": "example.com", "warn_days": 3, "fail_days": 7},
                    }
                ]
            }
        )
