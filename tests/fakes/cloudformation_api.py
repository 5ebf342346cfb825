"""The CloudFormation Query API (Version 2010-05-15) for ``DescribeStacks``, with the stack's
``DriftInformation``, which moto_server does not report (its drift detection answers 500).

Requests are form-encoded POSTs signed with SigV4; answers are the documented XML, errors the
documented ``ErrorResponse`` (a missing stack is a 400 ``ValidationError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from tests.fakes.base import FakeApi, Reply, Request

_NS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"
_REQUEST_ID = "b9b4b068-3a41-11e5-94eb-example"
ACCOUNT = "123456789012"


@dataclass
class Stack:
    name: str
    status: str = "CREATE_COMPLETE"
    status_reason: str | None = None
    drift_status: str = "NOT_CHECKED"  # DRIFTED | IN_SYNC | UNKNOWN | NOT_CHECKED
    drift_checked_at: datetime | None = None
    region: str = "us-west-2"
    created_at: datetime = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


class FakeCloudFormation(FakeApi):
    vendor = "cloudformation"

    def __init__(self) -> None:
        super().__init__()
        self.stacks: dict[str, Stack] = {}

    def add(self, stack: Stack) -> Stack:
        self.stacks[stack.name] = stack
        return stack

    def error(self, status: int, message: str, code: str = "InternalFailure") -> Reply:
        body = (
            f'<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{_REQUEST_ID}</RequestId></ErrorResponse>"
        )
        return Reply(status, raw=body.encode(), content_type="text/xml")

    def handle(self, request: Request) -> Reply:
        if request.method != "POST":
            return self.error(400, "Only POST is supported", "InvalidAction")
        if "AWS4-HMAC-SHA256" not in request.headers.get("authorization", ""):
            return self.error(
                403, "Request is missing Authentication Token", "MissingAuthenticationToken"
            )
        form = request.form
        if form.get("Action") != "DescribeStacks":
            return self.error(
                400, f"Could not find operation {form.get('Action')}", "InvalidAction"
            )
        name = form.get("StackName", "")
        stack = self.stacks.get(name)
        if stack is None:
            return self.error(400, f"Stack with id {name} does not exist", "ValidationError")
        reason = (
            f"<StackStatusReason>{escape(stack.status_reason)}</StackStatusReason>"
            if stack.status_reason
            else ""
        )
        checked = (
            f"<LastCheckTimestamp>{_iso(stack.drift_checked_at)}</LastCheckTimestamp>"
            if stack.drift_checked_at
            else ""
        )
        member = (
            "<member>"
            f"<StackName>{stack.name}</StackName>"
            f"<StackId>arn:aws:cloudformation:{stack.region}:{ACCOUNT}:stack/{stack.name}/"
            "4b1f6a40-3a41-11e5-a3c4-example</StackId>"
            f"<CreationTime>{_iso(stack.created_at)}</CreationTime>"
            f"<StackStatus>{stack.status}</StackStatus>{reason}"
            "<DisableRollback>false</DisableRollback>"
            f"<DriftInformation><StackDriftStatus>{stack.drift_status}</StackDriftStatus>"
            f"{checked}</DriftInformation>"
            "</member>"
        )
        body = (
            f'<DescribeStacksResponse xmlns="{_NS}"><DescribeStacksResult>'
            f"<Stacks>{member}</Stacks></DescribeStacksResult>"
            f"<ResponseMetadata><RequestId>{_REQUEST_ID}</RequestId></ResponseMetadata>"
            "</DescribeStacksResponse>"
        )
        return Reply(200, raw=body.encode(), content_type="text/xml")


def _iso(at: datetime | None) -> str:
    assert at is not None
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
