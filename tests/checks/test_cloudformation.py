"""The cloudformation check against moto_server, and against a CloudFormation Query API server
for the states and drift results moto cannot produce."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from app.checks.base import Status
from app.checks.cloudformation import CloudFormationCheck
from tests.fakes.cloudformation_api import FakeCloudFormation, Stack
from tests.fakes.rds_api import MotoServer
from tests.fakes.runs import assert_failed, run_once


@pytest.fixture(scope="module")
def fake(aws_env: None) -> Iterator[FakeCloudFormation]:
    server = FakeCloudFormation()
    yield server
    server.stop()


def check(url: str, stack: str, **params: Any) -> CloudFormationCheck:
    return CloudFormationCheck(
        "dr-stack",
        CloudFormationCheck.Params(
            stack_name=stack, region="us-west-2", endpoint_url=url, **params
        ),
        timeout=20,
    )


def add(fake: FakeCloudFormation, **fields: Any) -> str:
    name = f"lyo-infrastructure-dr-{uuid.uuid4().hex[:6]}"
    fake.add(Stack(name, **fields))
    return name


async def test_it_passes_for_a_created_stack_in_moto(moto: MotoServer) -> None:
    """A stack moto created is CREATE_COMPLETE."""
    name = f"lyo-infrastructure-dr-{uuid.uuid4().hex[:6]}"
    boto3.client("cloudformation", endpoint_url=moto.url, region_name="us-west-2").create_stack(
        StackName=name,
        TemplateBody=json.dumps({"Resources": {"Backups": {"Type": "AWS::S3::Bucket"}}}),
    )
    result = await run_once(check(moto.url, name))
    assert result.status is Status.PASS, result.output
    assert result.details["stack_status"] == "CREATE_COMPLETE"
    assert result.details["stack_id"].startswith("arn:aws:cloudformation:us-west-2:")


async def test_a_missing_stack_fails_permanently(moto: MotoServer) -> None:
    """A stack that was never deployed (or was deleted) is no standby."""
    result = await run_once(check(moto.url, "no-such-stack"))
    assert_failed(result, "does not exist", "us-west-2", permanent=True)


async def test_a_rolled_back_update_fails(fake: FakeCloudFormation) -> None:
    """UPDATE_ROLLBACK_COMPLETE is stable, but the standby is not what the plan describes."""
    name = add(fake, status="UPDATE_ROLLBACK_COMPLETE", status_reason="Resource creation cancelled")
    result = await run_once(check(fake.url, name))
    assert_failed(result, "UPDATE_ROLLBACK_COMPLETE", "rolled back", "Resource creation cancelled")


async def test_a_failed_stack_fails(fake: FakeCloudFormation) -> None:
    """CREATE_FAILED is not a complete state."""
    result = await run_once(check(fake.url, add(fake, status="CREATE_FAILED")))
    assert_failed(result, "CREATE_FAILED", "not in a complete state")


async def test_an_update_in_progress_warns(fake: FakeCloudFormation) -> None:
    """A stack being updated still exists; it is ready again once the update completes."""
    result = await run_once(check(fake.url, add(fake, status="UPDATE_IN_PROGRESS")))
    assert result.status is Status.WARN, result.output


async def test_drift_in_sync_passes(fake: FakeCloudFormation) -> None:
    """A recent IN_SYNC drift detection passes require_in_sync."""
    checked = datetime.now(UTC) - timedelta(hours=2)
    name = add(fake, status="UPDATE_COMPLETE", drift_status="IN_SYNC", drift_checked_at=checked)
    result = await run_once(check(fake.url, name, require_in_sync=True))
    assert result.status is Status.PASS, result.output
    assert result.details["drift_status"] == "IN_SYNC"
    assert "IN_SYNC (checked 2h" in result.output


async def test_a_drifted_stack_fails_when_sync_is_required(fake: FakeCloudFormation) -> None:
    """Resources changed outside CloudFormation; without require_in_sync it still passes."""
    checked = datetime.now(UTC) - timedelta(hours=1)
    name = add(fake, drift_status="DRIFTED", drift_checked_at=checked)
    result = await run_once(check(fake.url, name, require_in_sync=True))
    assert_failed(result, "DRIFTED", "outside CloudFormation")
    relaxed = await run_once(check(fake.url, name))
    assert relaxed.status is Status.PASS, relaxed.output


async def test_drift_never_detected_fails_when_sync_is_required(fake: FakeCloudFormation) -> None:
    """NOT_CHECKED says nothing about drift."""
    result = await run_once(check(fake.url, add(fake), require_in_sync=True))
    assert_failed(result, "never detected", "detect-stack-drift")


async def test_an_old_drift_detection_warns(fake: FakeCloudFormation) -> None:
    """IN_SYNC ten days ago is old news."""
    checked = datetime.now(UTC) - timedelta(days=10)
    name = add(fake, drift_status="IN_SYNC", drift_checked_at=checked)
    result = await run_once(check(fake.url, name, require_in_sync=True))
    assert result.status is Status.WARN, result.output
    # Ten days, plus the seconds the run itself took on a busy machine.
    assert re.search(r"drift was last detected 10d(\d+s)? ago, longer ago than 7d", result.output)
