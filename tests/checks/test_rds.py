"""The rds check against moto_server, and against a Query API server for lagging recovery."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from app.checks.base import Result, Status
from app.checks.rds import RdsCheck
from tests.checks.backup_contract import BACKUP_KEYS
from tests.fakes.rds_api import FakeRds, Instance, MotoServer, Snapshot
from tests.fakes.runs import assert_failed, run_once


@pytest.fixture(scope="module")
def fake(aws_env: None) -> Iterator[FakeRds]:
    server = FakeRds()
    yield server
    server.stop()


def rds(moto: MotoServer, region: str = "us-east-1") -> Any:
    return boto3.client("rds", endpoint_url=moto.url, region_name=region)


@pytest.fixture
def instance(moto: MotoServer) -> str:
    """A PostgreSQL instance in moto with automated backups (moto makes its first snapshot)."""
    identifier = f"shop-{uuid.uuid4().hex[:8]}"
    rds(moto).create_db_instance(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="shop",
        MasterUserPassword="not-a-real-password-1",
        AllocatedStorage=20,
        BackupRetentionPeriod=7,
    )
    return identifier


def check(url: str, identifier: str, **params: Any) -> RdsCheck:
    return RdsCheck(
        "rds",
        RdsCheck.Params(
            db_instance_identifier=identifier, region="us-east-1", endpoint_url=url, **params
        ),
        timeout=20,
    )


async def run(probe: RdsCheck) -> Result:
    result = await run_once(probe)
    assert set(result.details) >= BACKUP_KEYS, result.details
    return result


def ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


async def test_it_passes_with_a_fresh_automated_snapshot(moto: MotoServer, instance: str) -> None:
    """moto's automated snapshot is fresh and point-in-time recovery is current."""
    result = await run(check(moto.url, instance))
    assert result.status is Status.PASS, result.output
    details = result.details
    assert details["within_rpo"] is True
    assert details["verified"] is True
    assert details["verified_by"] == "available snapshot status"
    assert details["location"].startswith("arn:aws:rds:us-east-1:")
    assert details["snapshot_type"] == "automated"
    assert details["within_pitr_rpo"] is True
    assert details["pitr_lag_seconds"] < 60
    assert details["size_bytes"] is None
    assert details["allocated_storage_gib"] == 20


async def test_it_counts_manual_snapshots_only_when_asked(moto: MotoServer, instance: str) -> None:
    """A newer manual snapshot is the newest backup with include_manual, ignored without."""
    rds(moto).create_db_snapshot(
        DBInstanceIdentifier=instance, DBSnapshotIdentifier=f"{instance}-m"
    )
    with_manual = await run(check(moto.url, instance, include_manual=True))
    assert with_manual.details["snapshot_type"] == "manual"
    assert with_manual.details["location"].endswith(f":snapshot:{instance}-m")
    without = await run(check(moto.url, instance))
    assert without.details["snapshot_type"] == "automated"


async def test_it_fails_permanently_when_the_instance_does_not_exist(moto: MotoServer) -> None:
    """A wrong identifier cannot fix itself."""
    result = await run(check(moto.url, "no-such-instance"))
    assert_failed(result, "does not exist", permanent=True)
    assert result.details["last_backup_at"] is None
    assert result.details["rpo_seconds"] == 86400


async def test_it_passes_when_the_dr_region_has_a_recent_copy(
    moto: MotoServer, instance: str
) -> None:
    """A snapshot copied to the DR region is found there and its age reported."""
    rds(moto).create_db_snapshot(
        DBInstanceIdentifier=instance, DBSnapshotIdentifier=f"{instance}-m"
    )
    arn = rds(moto).describe_db_snapshots(DBSnapshotIdentifier=f"{instance}-m")["DBSnapshots"][0][
        "DBSnapshotArn"
    ]
    rds(moto, "eu-west-1").copy_db_snapshot(
        SourceDBSnapshotIdentifier=arn,
        TargetDBSnapshotIdentifier=f"{instance}-dr",
        SourceRegion="us-east-1",
    )
    result = await run(check(moto.url, instance, dr_region="eu-west-1", dr_endpoint_url=moto.url))
    assert result.status is Status.PASS, result.output
    assert result.details["dr_within_rpo"] is True
    assert ":eu-west-1:" in result.details["dr_location"]
    assert "eu-west-1" in result.output


async def test_it_fails_when_the_dr_region_has_no_copy(moto: MotoServer, instance: str) -> None:
    """Without a cross-region copy, the DR promise is not kept."""
    result = await run(
        check(moto.url, instance, dr_region="ap-southeast-2", dr_endpoint_url=moto.url)
    )
    assert_failed(result, "No available copy", "ap-southeast-2")
    assert result.details["dr_within_rpo"] is False
    assert result.details["within_rpo"] is True


async def test_it_fails_when_point_in_time_recovery_lags(fake: FakeRds) -> None:
    """A latest restorable time 40 minutes ago is past the 15 minute PITR RPO."""
    identifier = f"lagging-{uuid.uuid4().hex[:6]}"
    fake.add(
        Instance(identifier, ago(40 / 60), snapshots=[Snapshot(f"rds:{identifier}-1", ago(3))])
    )
    result = await run(check(fake.url, identifier))
    assert_failed(result, "Point-in-time recovery is 40m behind", "15m PITR RPO")
    assert result.details["within_pitr_rpo"] is False
    assert 39 * 60 < result.details["pitr_lag_seconds"] < 42 * 60
    assert result.details["within_rpo"] is True
    request = fake.requests[0]
    assert request.form["Action"] == "DescribeDBInstances"
    assert request.form["DBInstanceIdentifier"] == identifier


async def test_it_passes_when_the_pitr_lag_is_within_a_configured_pitr_rpo(fake: FakeRds) -> None:
    """pitr_rpo is configurable: the same 40 minutes pass against one hour."""
    identifier = f"lagging-{uuid.uuid4().hex[:6]}"
    fake.add(
        Instance(identifier, ago(40 / 60), snapshots=[Snapshot(f"rds:{identifier}-1", ago(3))])
    )
    result = await run(check(fake.url, identifier, pitr_rpo="1h"))
    assert result.status is Status.PASS, result.output


async def test_it_fails_when_the_newest_snapshot_is_older_than_the_rpo(fake: FakeRds) -> None:
    """Snapshots that stopped 30 hours ago are past the 24 h RPO."""
    identifier = f"stale-{uuid.uuid4().hex[:6]}"
    fake.add(
        Instance(
            identifier,
            ago(0.01),
            snapshots=[
                Snapshot(f"rds:{identifier}-a", ago(54)),
                Snapshot(f"rds:{identifier}-b", ago(30)),
            ],
        )
    )
    result = await run(check(fake.url, identifier))
    assert_failed(result, f"rds:{identifier}-b", "older than the 1d RPO")
    assert result.details["within_rpo"] is False
    assert 30 * 3600 - 60 < result.details["age_seconds"] < 30 * 3600 + 120


async def test_it_names_a_failed_snapshot_newer_than_the_last_good_one(fake: FakeRds) -> None:
    """A failed snapshot is bad; one still being created is not held against the instance."""
    identifier = f"failing-{uuid.uuid4().hex[:6]}"
    fake.add(
        Instance(
            identifier,
            ago(0.01),
            snapshots=[
                Snapshot(f"rds:{identifier}-good", ago(20)),
                Snapshot(f"rds:{identifier}-failed", ago(2), status="failed"),
                Snapshot(f"rds:{identifier}-new", ago(0.1), status="creating"),
            ],
        )
    )
    result = await run(check(fake.url, identifier))
    assert_failed(result, f"rds:{identifier}-failed is failed")
    assert [b["problem"] for b in result.details["bad_files"]] == ["failed"]
    assert result.details["in_progress"] == [f"rds:{identifier}-new"]
    assert result.details["location"].endswith(f"{identifier}-good")
    assert result.details["verified"] is False


async def test_it_fails_when_automated_backups_are_off(fake: FakeRds) -> None:
    """Retention 0 means no snapshots and no point-in-time recovery."""
    identifier = f"nobackups-{uuid.uuid4().hex[:6]}"
    fake.add(Instance(identifier, None, backup_retention_period=0))
    result = await run(check(fake.url, identifier))
    assert_failed(result, "Automated backups are turned off")
    assert result.details["last_backup_at"] is None
