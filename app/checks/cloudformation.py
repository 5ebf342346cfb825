"""``cloudformation``: the pre-provisioned stack of the standby region is deployed and intact.

Each run reads the stack (``DescribeStacks``). It passes in ``CREATE_COMPLETE``,
``UPDATE_COMPLETE`` and ``IMPORT_COMPLETE``; it warns while an update is in progress (the stack
still exists and serves); every other state fails, rollbacks included: ``UPDATE_ROLLBACK_COMPLETE``
is stable, but it means the last change to the DR stack failed and the region is not what the
plan describes.

With ``require_in_sync``, the last drift detection (``DriftInformation`` of the stack, as
``aws cloudformation detect-stack-drift`` or a scheduled job leaves it) must say ``IN_SYNC``; a
detection older than ``max_drift_check_age`` warns, since drwatch only reads drift and never
starts a detection itself (that needs read access to every resource of the stack).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from app.checks import base
from app.checks._aws import aws_client, aws_failure, error_code
from app.checks.base import Check, CheckFailed, Criticality, Result
from app.units import Duration, format_duration, rfc3339

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import StackTypeDef

_COMPLETE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
_UPDATING = {"UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"}


class CloudFormationCheck(Check["CloudFormationCheck.Params"]):
    """Fails unless the stack is in a complete state other than a rollback (and, with
    ``require_in_sync``, its last drift detection found it in sync).
    """

    class Params(base.Params):
        stack_name: str = Field(min_length=1, description="The DR stack's name or stack ID.")
        region: str | None = Field(
            None, description="The region the stack is deployed in, e.g. us-west-2."
        )
        require_in_sync: bool = Field(
            False, description="Fail unless the last drift detection found the stack IN_SYNC."
        )
        max_drift_check_age: Duration = Field(
            7 * 86400.0,
            description="With require_in_sync: warn when the last drift detection is older.",
        )
        endpoint_url: str | None = Field(
            None, description="CloudFormation endpoint to use instead of AWS's (a test server)."
        )

    default_criticality: ClassVar[Criticality] = "info"
    default_interval: ClassVar[float] = 300.0
    default_timeout: ClassVar[float] = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: CloudFormationClient | None = None

    async def run(self) -> Result:
        p = self.params
        stack = await asyncio.to_thread(self._describe)
        status = stack.get("StackStatus", "UNKNOWN")
        reason = stack.get("StackStatusReason")
        drift = stack.get("DriftInformation", {})
        checked = drift.get("LastCheckTimestamp")
        updated = stack.get("LastUpdatedTime") or stack.get("CreationTime")
        details: dict[str, Any] = {
            "stack": stack.get("StackName", p.stack_name),
            "stack_id": stack.get("StackId"),
            "stack_status": status,
            "stack_status_reason": reason,
            "last_updated_at": rfc3339(updated) if updated else None,
            "drift_status": drift.get("StackDriftStatus"),
            "drift_checked_at": rfc3339(checked) if checked else None,
        }
        name = f"The DR stack {p.stack_name}"
        because = f" ({reason})" if reason else ""
        if status in _UPDATING:
            return self.warned(
                f"{name} is being updated ({status}); it is ready again once the update completes.",
                details=details,
            )
        if "ROLLBACK" in status:
            return self.failed(
                f"{name} is {status}{because}: its last deployment failed and was rolled back, "
                "so the standby region is not what the plan describes. Fix and redeploy it.",
                details=details,
            )
        if status not in _COMPLETE:
            return self.failed(
                f"{name} is {status}{because}, not in a complete state; the standby "
                "infrastructure is not deployed as planned.",
                details=details,
            )
        if p.require_in_sync:
            return self._judge_drift(name, status, drift.get("StackDriftStatus"), checked, details)
        return self.passed(f"{name} is {status}.", details=details)

    def _judge_drift(
        self,
        name: str,
        status: str,
        drift: str | None,
        checked: datetime | None,
        details: dict[str, Any],
    ) -> Result:
        p = self.params
        if drift in (None, "NOT_CHECKED") or checked is None:
            return self.failed(
                f"{name} is {status}, but its drift was never detected; run "
                "`aws cloudformation detect-stack-drift` (on a schedule) so drift shows here.",
                details=details,
            )
        age = max(0.0, (datetime.now(UTC) - _aware(checked)).total_seconds())
        when = f"{format_duration(age)} ago"
        if drift != "IN_SYNC":
            return self.failed(
                f"{name} is {status}, but drift detection {when} found it {drift}: resources "
                "were changed outside CloudFormation, so a failover may not behave as tested.",
                details=details,
            )
        if age > p.max_drift_check_age:
            return self.warned(
                f"{name} is {status} and was IN_SYNC, but drift was last detected {when}, "
                f"longer ago than {format_duration(p.max_drift_check_age)}.",
                details=details,
            )
        return self.passed(f"{name} is {status} and IN_SYNC (checked {when}).", details=details)

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _describe(self) -> StackTypeDef:
        p = self.params
        what = f"CloudFormation stack {p.stack_name}"
        try:
            if self._client is None:
                self._client = aws_client("cloudformation", p.region, p.endpoint_url, self.timeout)
            stacks: list[StackTypeDef] = []
            for page in self._client.get_paginator("describe_stacks").paginate(
                StackName=p.stack_name
            ):
                stacks.extend(page.get("Stacks", []))
        except ClientError as exc:
            message = str(exc.response.get("Error", {}).get("Message", ""))
            if error_code(exc) == "ValidationError" and "does not exist" in message:
                raise CheckFailed(
                    f"The DR {what} does not exist in {p.region or 'the configured region'}; "
                    "it was deleted, never deployed, or the name or region is wrong.",
                    permanent=True,
                ) from None
            raise aws_failure(exc, what) from None
        except BotoCoreError as exc:
            raise aws_failure(exc, what) from None
        if not stacks:
            raise CheckFailed(f"The DR {what} does not exist.", permanent=True)
        return stacks[0]


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
