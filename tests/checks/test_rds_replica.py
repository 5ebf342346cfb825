"""The rds_replica check against moto_server: a cross-region read replica and its ReplicaLag."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from app.checks.base import Status
from app.checks.rds_replica import RdsReplicaCheck
from tests.fakes.rds_api import AWS_ENV, MotoServer
from tests.fakes.runs import assert_failed, run_once

PRIMARY_REGION = "eu-west-1"
DR_REGION = "us-west-2"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in AWS_ENV.items():
            env.setenv(name, value)
        server = MotoServer()
        yield server
        server.stop()


def client(moto: MotoServer, service: str, region: str) -> Any:
    return boto3.client(service, endpoint_url=moto.url, region_name=region)


@pytest.fixture
def primary(moto: MotoServer) -> str:
    """A PostgreSQL primary in eu-west-1; returns its ARN."""
    identifier = f"lyo-{uuid.uuid4().hex[:8]}"
    answer = client(moto, "rds", PRIMARY_REGION).create_db_instance(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t3.small",
        Engine="postgres",
        MasterUsername="lyoadmin",
        MasterUserPassword="not-a-real-password-1",
        AllocatedStorage=20,
        BackupRetentionPeriod=7,
    )
    return str(answer["DBInstance"]["DBInstanceArn"])


@pytest.fixture
def replica(moto: MotoServer, primary: str) -> str:
    """A read replica of ``primary`` in us-west-2; returns its identifier."""
    identifier = f"lyo-replica-{uuid.uuid4().hex[:8]}"
    client(moto, "rds", DR_REGION).create_db_instance_read_replica(
        DBInstanceIdentifier=identifier,
        SourceDBInstanceIdentifier=primary,
        DBInstanceClass="db.t3.small",
    )
    return identifier


def publish_lag(moto: MotoServer, identifier: str, seconds: float) -> None:
    client(moto, "cloudwatch", DR_REGION).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "ReplicaLag",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": identifier}],
                "Value": seconds,
                "Unit": "Seconds",
                "Timestamp": datetime.now(UTC),
            }
        ],
    )


def check(moto: MotoServer, identifier: str, **params: Any) -> RdsReplicaCheck:
    return RdsReplicaCheck(
        "dr-replica",
        RdsReplicaCheck.Params(
            db_instance_identifier=identifier,
            region=DR_REGION,
            endpoint_url=moto.url,
            cloudwatch_endpoint_url=moto.url,
            **params,
        ),
        timeout=20,
    )


async def test_it_passes_when_the_replica_is_available_and_close_behind(
    moto: MotoServer, primary: str, replica: str
) -> None:
    """An available replica of the expected primary, 30 s behind, is ready to be promoted."""
    publish_lag(moto, replica, 30)
    result = await run_once(check(moto, replica, source_db_instance=primary))
    assert result.status is Status.PASS, result.output
    assert result.details["replica_lag_seconds"] == 30
    assert result.details["source"] == primary
    assert result.details["replica_status"] == "available"
    assert result.details["max_lag_seconds"] == 900
    assert result.observed_value == 30
    assert "30s behind" in result.output


async def test_it_accepts_the_source_by_identifier(
    moto: MotoServer, primary: str, replica: str
) -> None:
    """The expected primary may be named by identifier although RDS reports an ARN."""
    publish_lag(moto, replica, 5)
    identifier = primary.rsplit(":db:", 1)[-1]
    result = await run_once(check(moto, replica, source_db_instance=identifier))
    assert result.status is Status.PASS, result.output


async def test_it_fails_with_the_figure_when_the_lag_is_over_the_rpo(
    moto: MotoServer, replica: str
) -> None:
    """47 minutes behind with a 15 minute RPO: the sentence says what a failover would lose."""
    publish_lag(moto, replica, 47 * 60)
    result = await run_once(check(moto, replica, rpo="15m"))
    assert_failed(result, "47m behind", "loses up to 47m", "RPO 15m")
    assert result.details["replica_lag_seconds"] == 47 * 60


async def test_max_lag_overrides_the_rpo(moto: MotoServer, replica: str) -> None:
    """A max_lag above the lag passes although the lag is over the RPO."""
    publish_lag(moto, replica, 20 * 60)
    result = await run_once(check(moto, replica, rpo="15m", max_lag="30m"))
    assert result.status is Status.PASS, result.output
    assert "max_lag 30m" in result.output


async def test_it_fails_without_lag_data(moto: MotoServer, replica: str) -> None:
    """No ReplicaLag datapoint in the window is not known to be fine."""
    result = await run_once(check(moto, replica))
    assert_failed(result, "no ReplicaLag")


async def test_it_fails_when_replication_is_not_running(moto: MotoServer, replica: str) -> None:
    """RDS publishes -1 while replication is stopped."""
    publish_lag(moto, replica, -1)
    result = await run_once(check(moto, replica))
    assert_failed(result, "not running")
    assert result.details["replica_lag_seconds"] is None


async def test_it_fails_permanently_when_the_source_is_another_instance(
    moto: MotoServer, replica: str
) -> None:
    """A replica of the wrong primary would promote the wrong database."""
    publish_lag(moto, replica, 5)
    result = await run_once(check(moto, replica, source_db_instance="someone-else"))
    assert_failed(result, "not from someone-else", permanent=True)
    # Promoting it would not keep this database's data, so it offers no data-loss figure.
    assert result.details["replica_lag_seconds"] is None


async def test_it_fails_when_the_instance_is_not_a_replica(moto: MotoServer, primary: str) -> None:
    """A promoted (or standalone) instance is no standby."""
    identifier = primary.rsplit(":db:", 1)[-1]
    probe = RdsReplicaCheck(
        "dr-replica",
        RdsReplicaCheck.Params(
            db_instance_identifier=identifier,
            region=PRIMARY_REGION,
            endpoint_url=moto.url,
            cloudwatch_endpoint_url=moto.url,
        ),
        timeout=20,
    )
    result = await run_once(probe)
    assert_failed(result, "not a read replica")


async def test_it_fails_permanently_when_the_replica_does_not_exist(moto: MotoServer) -> None:
    """A wrong identifier cannot fix itself."""
    result = await run_once(check(moto, "no-such-replica"))
    assert_failed(result, "does not exist", permanent=True)


def test_its_lag_threshold_is_the_rpo_unless_max_lag_is_set() -> None:
    """drwatch_replication_lag_max_seconds reads the threshold the check applies."""
    params = RdsReplicaCheck.Params(db_instance_identifier="r", rpo="15m")
    assert RdsReplicaCheck.replication_lag_threshold(params) == 900
    params = RdsReplicaCheck.Params(db_instance_identifier="r", rpo="15m", max_lag="20m")
    assert RdsReplicaCheck.replication_lag_threshold(params) == 1200
