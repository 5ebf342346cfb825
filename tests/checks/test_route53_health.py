"""The route53_health check against moto_server (health checks, failover records), and against a
Route 53 API server for what moto cannot show: failing checkers and their last failure reason."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from app.checks.base import Status
from app.checks.route53_health import Route53HealthCheck
from tests.fakes.rds_api import MotoServer
from tests.fakes.route53_api import FakeRoute53, HealthCheck
from tests.fakes.runs import assert_failed, run_once

PRIMARY_TARGET = "lyo-eu-1234.eu-west-1.elb.amazonaws.com"
SECONDARY_TARGET = "lyo-us-5678.us-west-2.elb.amazonaws.com"


@pytest.fixture(scope="module")
def fake(aws_env: None) -> Iterator[FakeRoute53]:
    server = FakeRoute53()
    yield server
    server.stop()


def route53(moto: MotoServer) -> Any:
    return boto3.client("route53", endpoint_url=moto.url, region_name="us-east-1")


@pytest.fixture
def health_check(moto: MotoServer) -> str:
    answer = route53(moto).create_health_check(
        CallerReference=uuid.uuid4().hex,
        HealthCheckConfig={
            "Type": "HTTPS",
            "FullyQualifiedDomainName": "api.lyo-booking.com",
            "ResourcePath": "/health",
            "Port": 443,
            "RequestInterval": 30,
            "FailureThreshold": 3,
        },
    )
    return str(answer["HealthCheck"]["Id"])


def record(name: str, role: str, target: str, health_check: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "Name": name,
        "Type": "CNAME",
        "SetIdentifier": role.lower(),
        "Failover": role,
        "TTL": 60,
        "ResourceRecords": [{"Value": target}],
    }
    if health_check:
        found["HealthCheckId"] = health_check
    return found


def check(url: str, health_check: str, **params: Any) -> Route53HealthCheck:
    return Route53HealthCheck(
        "route53",
        Route53HealthCheck.Params(health_check_id=health_check, endpoint_url=url, **params),
        timeout=20,
    )


def paired(
    moto: MotoServer,
    health_check: str,
    primary_check: str | None = "",
    secondary: str | None = SECONDARY_TARGET,
) -> Route53HealthCheck:
    """A zone with the failover pair for api.<zone> (PRIMARY tied to ``primary_check``, the
    health check itself when ""), and the check that reads it."""
    zone = route53(moto).create_hosted_zone(
        Name=f"lyo-{uuid.uuid4().hex[:6]}.com", CallerReference=uuid.uuid4().hex
    )["HostedZone"]
    name = f"api.{zone['Name']}"
    records = [record(name, "PRIMARY", PRIMARY_TARGET, primary_check or health_check)]
    if secondary is not None:
        records.append(record(name, "SECONDARY", secondary))
    route53(moto).change_resource_record_sets(
        HostedZoneId=zone["Id"],
        ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": r} for r in records]},
    )
    return check(
        moto.url,
        health_check,
        hosted_zone_id=zone["Id"].rsplit("/", 1)[-1],
        record_name=name,
        record_type="CNAME",
        dr_region="us-west-2",
    )


async def test_it_passes_with_healthy_checkers_and_the_failover_pair(
    moto: MotoServer, health_check: str
) -> None:
    """Every checker sees the endpoint; PRIMARY carries the health check, SECONDARY is in the DR
    region."""
    result = await run_once(paired(moto, health_check))
    assert result.status is Status.PASS, result.output
    details = result.details
    assert details["route53_healthy"] is True
    assert details["healthy_share"] == 1.0
    assert details["failover_records"] is True
    assert details["secondary_target"] == SECONDARY_TARGET
    assert "failover record pair is in place" in result.output


async def test_a_missing_secondary_record_fails(moto: MotoServer, health_check: str) -> None:
    """Without a SECONDARY record DNS has nowhere to fail over to."""
    result = await run_once(paired(moto, health_check, secondary=None))
    assert_failed(result, "no SECONDARY record", permanent=True)
    assert result.details["failover_records"] is False


async def test_a_primary_tied_to_another_health_check_fails(
    moto: MotoServer, health_check: str
) -> None:
    """Route 53 would fail over on another signal than the one watched here."""
    other = route53(moto).create_health_check(
        CallerReference=uuid.uuid4().hex,
        HealthCheckConfig={"Type": "TCP", "IPAddress": "192.0.2.10", "Port": 443},
    )["HealthCheck"]["Id"]
    result = await run_once(paired(moto, health_check, primary_check=other))
    assert_failed(result, f"tied to health check {other}", permanent=True)


async def test_a_secondary_outside_the_dr_region_fails(moto: MotoServer, health_check: str) -> None:
    """A SECONDARY pointing back into the primary region does not reach the standby."""
    result = await run_once(paired(moto, health_check, secondary=PRIMARY_TARGET))
    assert_failed(result, "not in us-west-2", permanent=True)


async def test_it_fails_at_or_under_route53s_18_percent_rule(fake: FakeRoute53) -> None:
    """2 of 16 checkers healthy (12 %): Route 53 takes the endpoint as down, and says why."""
    health_check = fake.add(HealthCheck(uuid.uuid4().hex))
    health_check.checkers(healthy=2, failing=14, reason="Connection timed out.")
    result = await run_once(check(fake.url, health_check.id))
    assert_failed(result, "2 of 16", "12%", "18 %", "Connection timed out")
    assert result.details["route53_healthy"] is False
    assert result.details["last_failure_reason"] == "Failure: Connection timed out."


async def test_it_warns_when_some_checkers_fail(fake: FakeRoute53) -> None:
    """3 of 16 failing is still healthy for Route 53, but checker ranges may be blocked."""
    health_check = fake.add(HealthCheck(uuid.uuid4().hex))
    health_check.checkers(healthy=13, failing=3, reason="HTTP Status Code 403, Forbidden")
    result = await run_once(check(fake.url, health_check.id))
    assert result.status is Status.WARN, result.output
    assert "3 of 16" in result.output and "403" in result.output
    assert result.details["route53_healthy"] is True


async def test_a_disabled_health_check_fails(fake: FakeRoute53) -> None:
    """Route 53 takes a disabled health check as healthy forever: DNS would never fail over."""
    health_check = fake.add(HealthCheck(uuid.uuid4().hex, disabled=True))
    health_check.checkers(healthy=16, failing=0, reason="")
    result = await run_once(check(fake.url, health_check.id))
    assert_failed(result, "disabled", "never fail over")


async def test_no_observations_fail(fake: FakeRoute53) -> None:
    """A health check nobody probes tells nothing."""
    health_check = fake.add(HealthCheck(uuid.uuid4().hex))
    result = await run_once(check(fake.url, health_check.id))
    assert_failed(result, "no observations")


async def test_an_unknown_health_check_fails_permanently(fake: FakeRoute53) -> None:
    """A wrong id cannot fix itself."""
    result = await run_once(check(fake.url, "no-such-health-check"))
    assert_failed(result, "does not exist", permanent=True)
