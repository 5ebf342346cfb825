"""``route53_health``: what Route 53's own health checkers see, and whether DNS can fail over.

drwatch's ``/health`` is what Route 53 probes; this check reads the other side: Route 53's verdict
on a health check (``GetHealthCheck``, ``GetHealthCheckStatus``). Route 53 considers an endpoint
healthy while more than 18 % of its checkers report it healthy, so a firewall that blocks most
checker ranges fails traffic over although drwatch sees nothing wrong. The check:

* fails when the health check is disabled (Route 53 then takes it as always healthy, so DNS
  would never fail over), when Route 53 has no observations, or when 18 % or fewer checkers see
  the endpoint healthy (DNS has failed over, or is about to), with the last failure reason
  (``GetHealthCheckLastFailureReason``);
* warns when some checkers fail but Route 53 still sees it healthy;
* with ``hosted_zone_id`` and ``record_name``, fails unless the failover pair exists
  (``ListResourceRecordSets``): a ``PRIMARY`` record with this health check and a ``SECONDARY``
  one whose target names ``dr_region`` (when set).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from app.checks import base
from app.checks._aws import aws_client, aws_failure
from app.checks.base import Check, Criticality, Result

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_route53.type_defs import (
        HealthCheckObservationTypeDef,
        HealthCheckTypeDef,
        ResourceRecordSetOutputTypeDef,
    )

# Route 53 considers an endpoint healthy when more than this share of its checkers say so.
HEALTHY_SHARE_THRESHOLD = 0.18
# Route 53's API is global; its endpoint lives in us-east-1.
_ROUTE53_REGION = "us-east-1"


@dataclass
class _Found:
    health_check: HealthCheckTypeDef
    observations: list[HealthCheckObservationTypeDef]
    last_failure: str | None
    records: list[ResourceRecordSetOutputTypeDef] | None


class Route53HealthCheck(Check["Route53HealthCheck.Params"]):
    """Fails when Route 53 sees the endpoint unhealthy (at most 18 % of checkers healthy), when
    the health check is disabled, or when the failover record pair is missing or wrong.
    """

    class Params(base.Params):
        health_check_id: str = Field(
            min_length=1, description="The Route 53 health check of the primary endpoint."
        )
        hosted_zone_id: str | None = Field(
            None, description="Hosted zone of the failover records; with record_name."
        )
        record_name: str | None = Field(
            None, description="Name of the failover record pair, e.g. api.example.com."
        )
        record_type: str = Field("A", description="Type of the failover records (A, AAAA, CNAME).")
        dr_region: str | None = Field(
            None, description="The SECONDARY record's target must name this region (us-west-2)."
        )
        endpoint_url: str | None = Field(
            None, description="Route 53 API endpoint to use instead of AWS's (a test server)."
        )

    default_criticality: ClassVar[Criticality] = "info"
    default_interval: ClassVar[float] = 60.0
    default_timeout: ClassVar[float] = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Route53Client | None = None

    async def run(self) -> Result:
        p = self.params
        found = await asyncio.to_thread(self._read)
        config = found.health_check.get("HealthCheckConfig", {})
        total = len(found.observations)
        healthy = sum(1 for o in found.observations if _succeeded(o))
        share = healthy / total if total else 0.0
        details: dict[str, Any] = {
            "health_check_id": p.health_check_id,
            "endpoint": config.get("FullyQualifiedDomainName") or config.get("IPAddress"),
            "disabled": bool(config.get("Disabled", False)),
            "inverted": bool(config.get("Inverted", False)),
            "checkers": total,
            "healthy_checkers": healthy,
            "healthy_share": round(share, 4),
            "healthy_share_threshold": HEALTHY_SHARE_THRESHOLD,
            "route53_healthy": total > 0 and share > HEALTHY_SHARE_THRESHOLD,
            "last_failure_reason": found.last_failure,
            "failover_records": None,
            "primary_target": None,
            "secondary_target": None,
        }
        record_problem = self._judge_records(found.records, details)
        name = f"Route 53 health check {p.health_check_id}"
        if details["disabled"]:
            return self.failed(
                f"{name} is disabled: Route 53 takes it as always healthy, so DNS would never "
                "fail over to the standby region.",
                details=details,
            )
        if record_problem is not None:
            return self.failed(record_problem, details=details, permanent=True)
        last = f" Last failure: {found.last_failure}." if found.last_failure else ""
        if total == 0:
            return self.failed(
                f"{name} has no observations from Route 53's checkers; it is new, or its "
                "checker regions are not probing.",
                details=details,
            )
        counted = f"{healthy} of {total} Route 53 checkers ({share:.0%})"
        if share <= HEALTHY_SHARE_THRESHOLD:
            return self.failed(
                f"Route 53 sees {details['endpoint'] or p.health_check_id} as unhealthy: only "
                f"{counted} report it healthy, not more than its 18 % threshold, so DNS fails "
                f"over to the secondary.{last}",
                observed_value=share,
                details=details,
            )
        if healthy < total:
            return self.warned(
                f"{total - healthy} of {total} Route 53 checkers see "
                f"{details['endpoint'] or p.health_check_id} failing; Route 53 still counts it "
                f"healthy ({share:.0%} > 18 %). Checker ranges may be blocked.{last}",
                observed_value=share,
                details=details,
            )
        pair = " and the failover record pair is in place" if found.records is not None else ""
        return self.passed(
            f"All {total} Route 53 checkers see {details['endpoint'] or p.health_check_id} "
            f"healthy{pair}.",
            observed_value=share,
            details=details,
        )

    def _judge_records(
        self, records: list[ResourceRecordSetOutputTypeDef] | None, details: dict[str, Any]
    ) -> str | None:
        if records is None:
            return None
        p = self.params
        wanted = _fqdn(p.record_name or "")
        pair = [
            r
            for r in records
            if _fqdn(r.get("Name", "")) == wanted and r.get("Type") == p.record_type.upper()
        ]
        primary = next((r for r in pair if r.get("Failover") == "PRIMARY"), None)
        secondary = next((r for r in pair if r.get("Failover") == "SECONDARY"), None)
        details["primary_target"] = _target(primary) if primary else None
        details["secondary_target"] = _target(secondary) if secondary else None
        details["failover_records"] = False
        record = f"{p.record_name} {p.record_type.upper()}"
        if primary is None or secondary is None:
            missing = " and ".join(
                role for role, r in (("PRIMARY", primary), ("SECONDARY", secondary)) if r is None
            )
            return (
                f"The failover record pair {record} has no {missing} record in zone "
                f"{p.hosted_zone_id}; DNS cannot fail over to the standby region."
            )
        if primary.get("HealthCheckId") != p.health_check_id:
            return (
                f"The PRIMARY record {record} is tied to health check "
                f"{primary.get('HealthCheckId') or 'none'}, not {p.health_check_id}; Route 53 "
                "fails over on another signal than this one."
            )
        if p.dr_region and p.dr_region not in str(details["secondary_target"]):
            return (
                f"The SECONDARY record {record} points at {details['secondary_target']}, which "
                f"is not in {p.dr_region}; a failover would not reach the standby region."
            )
        details["failover_records"] = True
        return None

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _read(self) -> _Found:
        p = self.params
        what = f"Route 53 health check {p.health_check_id}"
        try:
            if self._client is None:
                self._client = aws_client("route53", _ROUTE53_REGION, p.endpoint_url, self.timeout)
            client = self._client
            health_check = client.get_health_check(HealthCheckId=p.health_check_id)["HealthCheck"]
            observations = client.get_health_check_status(HealthCheckId=p.health_check_id).get(
                "HealthCheckObservations", []
            )
            last_failure = None
            if any(not _succeeded(o) for o in observations):
                last_failure = _last_failure(client, p.health_check_id)
        except (ClientError, BotoCoreError) as exc:
            raise aws_failure(exc, what, missing={"NoSuchHealthCheck"}) from None
        records = None
        if p.hosted_zone_id and p.record_name:
            try:
                records = self._records(client)
            except (ClientError, BotoCoreError) as exc:
                raise aws_failure(
                    exc, f"hosted zone {p.hosted_zone_id}", missing={"NoSuchHostedZone"}
                ) from None
        return _Found(health_check, list(observations), last_failure, records)

    def _records(self, client: Route53Client) -> list[ResourceRecordSetOutputTypeDef]:
        p = self.params
        assert p.hosted_zone_id is not None and p.record_name is not None
        wanted = _fqdn(p.record_name)
        # Records come sorted by name from StartRecordName on, so the pair (and any other
        # routing records of the name) is in the first page; no paging through the whole zone.
        answer = client.list_resource_record_sets(
            HostedZoneId=p.hosted_zone_id,
            StartRecordName=p.record_name,
            StartRecordType=p.record_type.upper(),  # type: ignore[arg-type]
            MaxItems="100",
        )
        return [
            r for r in answer.get("ResourceRecordSets", []) if _fqdn(r.get("Name", "")) == wanted
        ]


def _succeeded(observation: HealthCheckObservationTypeDef) -> bool:
    return str(observation.get("StatusReport", {}).get("Status", "")).startswith("Success")


def _last_failure(client: Route53Client, health_check_id: str) -> str | None:
    answer = client.get_health_check_last_failure_reason(HealthCheckId=health_check_id)
    reports = [
        o.get("StatusReport", {})
        for o in answer.get("HealthCheckObservations", [])
        if o.get("StatusReport")
    ]
    if not reports:
        return None
    newest = max(reports, key=lambda r: str(r.get("CheckedTime", "")))
    return str(newest.get("Status", "")) or None


def _fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


def _target(record: ResourceRecordSetOutputTypeDef) -> str:
    alias = record.get("AliasTarget")
    if alias is not None:
        return alias.get("DNSName", "")
    return ", ".join(v.get("Value", "") for v in record.get("ResourceRecords", []))
