"""The Route 53 REST API (2013-04-01) for one health check as Route 53's checkers see it.

moto_server reports a single, always successful observation and has no
``GetHealthCheckLastFailureReason``; this server answers ``GetHealthCheck``,
``GetHealthCheckStatus`` and ``GetHealthCheckLastFailureReason`` with the observations a test
sets (one per checker region), in the documented XML shapes, and the documented ``ErrorResponse``
(404 ``NoSuchHealthCheck``) for an unknown id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from tests.fakes.base import FakeApi, Reply, Request

_NS = "https://route53.amazonaws.com/doc/2013-04-01/"
_REQUEST_ID = "a3b4c5d6-7e8f-4a0b-9c1d-2e3f4a5b6c7d"
_PATH = re.compile(r"^/2013-04-01/healthcheck/(?P<id>[^/]+)(?P<what>/status|/lastfailurereason)?$")
CHECKER_REGIONS = (
    "us-east-1",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
)


@dataclass
class Observation:
    region: str
    ip_address: str
    status: str  # "Success: HTTP Status Code 200, OK" or "Failure: ..."
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def succeeded(self) -> bool:
        return self.status.startswith("Success")


@dataclass
class HealthCheck:
    id: str
    domain_name: str = "api.lyo-booking.com"
    disabled: bool = False
    observations: list[Observation] = field(default_factory=list)

    def checkers(self, healthy: int, failing: int, reason: str) -> None:
        """``healthy`` checkers that succeed and ``failing`` ones that fail with ``reason``,
        spread over Route 53's checker regions, two addresses per region as Route 53 does."""
        self.observations = []
        for n in range(healthy + failing):
            region = CHECKER_REGIONS[(n // 2) % len(CHECKER_REGIONS)]
            status = "Success: HTTP Status Code 200, OK" if n < healthy else f"Failure: {reason}"
            self.observations.append(Observation(region, f"15.177.{n // 2}.{n % 2 + 10}", status))


class FakeRoute53(FakeApi):
    vendor = "route53"

    def __init__(self) -> None:
        super().__init__()
        self.health_checks: dict[str, HealthCheck] = {}

    def add(self, health_check: HealthCheck) -> HealthCheck:
        self.health_checks[health_check.id] = health_check
        return health_check

    def error(self, status: int, message: str, code: str = "InternalFailure") -> Reply:
        body = (
            f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{_REQUEST_ID}</RequestId></ErrorResponse>"
        )
        return Reply(status, raw=body.encode(), content_type="text/xml")

    def handle(self, request: Request) -> Reply:
        if "AWS4-HMAC-SHA256" not in request.headers.get("authorization", ""):
            return self.error(403, "Missing Authentication Token", "MissingAuthenticationToken")
        match = _PATH.match(request.path)
        if request.method != "GET" or match is None:
            return self.error(404, f"No route for {request.method} {request.path}", "NotFound")
        health_check = self.health_checks.get(match.group("id"))
        if health_check is None:
            return self.error(
                404,
                f"A health check with id {match.group('id')} does not exist.",
                "NoSuchHealthCheck",
            )
        what = match.group("what")
        if what == "/status":
            return self._observations("GetHealthCheckStatus", health_check.observations)
        if what == "/lastfailurereason":
            failed = [o for o in health_check.observations if not o.succeeded]
            return self._observations("GetHealthCheckLastFailureReason", failed)
        return self._ok(
            "GetHealthCheck",
            "<HealthCheck>"
            f"<Id>{health_check.id}</Id><CallerReference>drwatch-test</CallerReference>"
            "<HealthCheckConfig><Port>443</Port><Type>HTTPS</Type>"
            "<ResourcePath>/health</ResourcePath>"
            f"<FullyQualifiedDomainName>{health_check.domain_name}</FullyQualifiedDomainName>"
            "<RequestInterval>30</RequestInterval><FailureThreshold>3</FailureThreshold>"
            "<MeasureLatency>false</MeasureLatency><Inverted>false</Inverted>"
            f"<Disabled>{str(health_check.disabled).lower()}</Disabled>"
            "<EnableSNI>true</EnableSNI></HealthCheckConfig>"
            "<HealthCheckVersion>1</HealthCheckVersion>"
            "</HealthCheck>",
        )

    def _observations(self, action: str, observations: list[Observation]) -> Reply:
        members = "".join(
            "<HealthCheckObservation>"
            f"<Region>{o.region}</Region><IPAddress>{o.ip_address}</IPAddress>"
            f"<StatusReport><Status>{escape(o.status)}</Status>"
            f"<CheckedTime>{o.checked_at.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z</CheckedTime>"
            "</StatusReport></HealthCheckObservation>"
            for o in observations
        )
        return self._ok(action, f"<HealthCheckObservations>{members}</HealthCheckObservations>")

    def _ok(self, action: str, body: str) -> Reply:
        text = f'<?xml version="1.0"?>\n<{action}Response xmlns="{_NS}">{body}</{action}Response>'
        return Reply(200, raw=text.encode(), content_type="text/xml")
