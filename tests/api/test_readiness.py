"""/api/dr-readiness, its metrics and `drwatch dr-readiness`, with the standby region's checks
running against moto_server (and a CloudFormation API server for a rolled-back stack)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from app.config import parse_config
from app.errors import ConfigError
from tests.fakes.cloudformation_api import FakeCloudFormation, Stack
from tests.fakes.rds_api import AWS_ENV, MotoServer
from tests.harness import running_app, settings_for

ROOT = Path(__file__).resolve().parents[2]
PRIMARY, DR = "eu-west-1", "us-west-2"


@pytest.fixture(scope="module")
def cloudformation(aws_env: None) -> Iterator[FakeCloudFormation]:
    server = FakeCloudFormation()
    yield server
    server.stop()


@dataclass
class Standby:
    """The Lyo standby region in moto: a replica, replicated backups, the DR stack."""

    moto: MotoServer
    replica: str
    bucket: str
    dr_bucket: str
    stack: str

    def client(self, service: str, region: str) -> Any:
        return boto3.client(service, endpoint_url=self.moto.url, region_name=region)

    def lag(self, seconds: float) -> None:
        self.client("cloudwatch", DR).put_metric_data(
            Namespace="AWS/RDS",
            MetricData=[
                {
                    "MetricName": "ReplicaLag",
                    "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": self.replica}],
                    "Value": seconds,
                    "Timestamp": datetime.now(UTC),
                }
            ],
        )

    def replication(self, status: str = "Enabled") -> None:
        self.client("s3", PRIMARY).put_bucket_replication(
            Bucket=self.bucket,
            ReplicationConfiguration={
                "Role": "arn:aws:iam::123456789012:role/lyo-s3-replication",
                "Rules": [
                    {
                        "ID": "backups-to-dr",
                        "Priority": 1,
                        "Status": status,
                        "Filter": {"Prefix": "backups/"},
                        "DeleteMarkerReplication": {"Status": "Disabled"},
                        "Destination": {"Bucket": f"arn:aws:s3:::{self.dr_bucket}"},
                    }
                ],
            },
        )

    def backup(self, size: int, dr_size: int | None) -> None:
        key = "backups/lyo_20261128_030000.dump"
        self.client("s3", PRIMARY).put_object(Bucket=self.bucket, Key=key, Body=b"x" * size)
        if dr_size is not None:
            self.client("s3", DR).put_object(Bucket=self.dr_bucket, Key=key, Body=b"x" * dr_size)

    def checks(
        self, *, replica: bool = True, stack_url: str | None = None, stack: str | None = None
    ) -> list[dict[str, Any]]:
        url = self.moto.url
        found: list[dict[str, Any]] = [
            {
                "name": "dr-backups",
                "type": "s3_replication",
                "labels": {"region": "dr"},
                "params": {
                    "bucket": self.bucket,
                    "prefix": "backups/",
                    "dr_bucket": self.dr_bucket,
                    "rpo": "24h",
                    "replication_grace": "0s",
                    "region": PRIMARY,
                    "endpoint_url": url,
                    "dr_region": DR,
                    "dr_endpoint_url": url,
                },
            },
            {
                "name": "dr-stack",
                "type": "cloudformation",
                "labels": {"region": "dr"},
                "params": {
                    "stack_name": stack or self.stack,
                    "region": DR,
                    "endpoint_url": stack_url or url,
                },
            },
        ]
        if replica:
            found.insert(
                0,
                {
                    "name": "dr-replica",
                    "type": "rds_replica",
                    "labels": {"region": "dr"},
                    "params": {
                        "db_instance_identifier": self.replica,
                        "region": DR,
                        "rpo": "15m",
                        "endpoint_url": url,
                        "cloudwatch_endpoint_url": url,
                    },
                },
            )
        return found


@pytest.fixture
def standby(moto: MotoServer) -> Standby:
    suffix = uuid.uuid4().hex[:8]
    found = Standby(
        moto,
        f"lyo-replica-{suffix}",
        f"lyo-backups-{suffix}",
        f"lyo-dr-{suffix}",
        f"lyo-dr-{suffix}",
    )
    primary = found.client("rds", PRIMARY).create_db_instance(
        DBInstanceIdentifier=f"lyo-{suffix}",
        DBInstanceClass="db.t3.small",
        Engine="postgres",
        MasterUsername="lyoadmin",
        MasterUserPassword="not-a-real-password-1",
        AllocatedStorage=20,
        BackupRetentionPeriod=7,
    )["DBInstance"]["DBInstanceArn"]
    found.client("rds", DR).create_db_instance_read_replica(
        DBInstanceIdentifier=found.replica,
        SourceDBInstanceIdentifier=primary,
        DBInstanceClass="db.t3.small",
    )
    for bucket, region in ((found.bucket, PRIMARY), (found.dr_bucket, DR)):
        s3 = found.client("s3", region)
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    found.client("cloudformation", DR).create_stack(
        StackName=found.stack,
        TemplateBody=json.dumps({"Resources": {"Logs": {"Type": "AWS::S3::Bucket"}}}),
    )
    return found


@pytest.fixture
async def answer_for(tmp_path: Path) -> AsyncIterator[Any]:
    """Runs drwatch with the given checks until each has reported; returns the readiness
    answer (status code, body) and the /metrics text."""

    async def answer(checks: list[dict[str, Any]], **extra: Any) -> tuple[int, Any, str]:
        config = {"checks": [{"interval": "5m", **c} for c in checks], **extra}
        async with running_app(config, settings_for(tmp_path)) as running:
            await running.wait_ready(60)
            response = await running.client.get("/api/dr-readiness")
            metrics = await running.client.get("/metrics")
            return response.status_code, response.json(), metrics.text

    yield answer


def samples(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("drwatch_dr_")
    }


async def test_a_ready_standby_answers_200_with_what_failing_over_would_cost(
    standby: Standby, answer_for: Any
) -> None:
    """Replica 30 s behind, backups replicated, stack complete: ready, with the replica's lag as
    the data loss and the RTO as the recovery time (no drill yet)."""
    standby.lag(30)
    standby.replication()
    standby.backup(400, 400)
    code, body, metrics = await answer_for(standby.checks())
    assert code == 200, body
    assert body["ready"] is True and body["status"] == "pass"
    assert body["blockers"] == []
    assert [c["name"] for c in body["checks"]] == ["dr-replica", "dr-backups", "dr-stack"]
    assert {c["status"] for c in body["checks"]} == {"pass"}
    cost = body["if_failed_over_now"]
    assert cost["expected_data_loss_seconds"] == 30
    assert cost["rpo_seconds"] == 900
    assert "ReplicaLag" in cost["basis"]["data_loss"]
    assert cost["expected_recovery_seconds"] == 4 * 3600
    assert "RTO of 4h" in cost["basis"]["recovery"]
    assert samples(metrics) == {
        "drwatch_dr_ready": 1.0,
        "drwatch_dr_expected_data_loss_seconds": 30.0,
        "drwatch_dr_expected_recovery_seconds": 14400.0,
    }


async def test_replica_lag_over_the_rpo_is_a_blocker_with_the_figure(
    standby: Standby, answer_for: Any
) -> None:
    """47 minutes behind with a 15 minute RPO: not ready, and the blocker says what is lost."""
    standby.lag(47 * 60)
    standby.replication()
    standby.backup(400, 400)
    code, body, metrics = await answer_for(standby.checks())
    assert code == 503
    assert body["ready"] is False and body["status"] == "fail"
    assert len(body["blockers"]) == 1
    assert "47m behind: failing over now loses up to 47m of data, RPO 15m" in body["blockers"][0]
    assert body["if_failed_over_now"]["expected_data_loss_seconds"] == 47 * 60
    assert samples(metrics)["drwatch_dr_ready"] == 0.0


async def test_a_disabled_replication_rule_makes_the_standby_not_ready(
    standby: Standby, answer_for: Any
) -> None:
    """Backups that stopped reaching the standby region block it."""
    standby.lag(30)
    standby.replication("Disabled")
    standby.backup(400, 400)
    code, body, _ = await answer_for(standby.checks())
    assert code == 503 and body["ready"] is False
    assert any("disabled" in blocker for blocker in body["blockers"]), body["blockers"]


@pytest.mark.parametrize("dr_size", [None, 100])
async def test_a_missing_or_different_dr_backup_makes_the_standby_not_ready(
    standby: Standby, answer_for: Any, dr_size: int | None
) -> None:
    """The newest backup absent from the DR bucket, or there at another size, blocks."""
    standby.lag(30)
    standby.replication()
    standby.backup(400, dr_size)
    code, body, _ = await answer_for(standby.checks())
    assert code == 503 and body["ready"] is False
    statuses = {c["name"]: c["status"] for c in body["checks"]}
    assert statuses == {"dr-replica": "pass", "dr-backups": "fail", "dr-stack": "pass"}


async def test_a_rolled_back_dr_stack_makes_the_standby_not_ready(
    standby: Standby, answer_for: Any, cloudformation: FakeCloudFormation
) -> None:
    """A DR stack in UPDATE_ROLLBACK_COMPLETE is not the infrastructure the plan describes."""
    standby.lag(30)
    standby.replication()
    standby.backup(400, 400)
    cloudformation.add(Stack(standby.stack, status="UPDATE_ROLLBACK_COMPLETE"))
    code, body, _ = await answer_for(
        standby.checks(stack_url=cloudformation.url, stack=standby.stack)
    )
    assert code == 503 and body["ready"] is False
    assert any("UPDATE_ROLLBACK_COMPLETE" in blocker for blocker in body["blockers"])


async def test_without_a_replica_the_data_loss_is_the_replicated_backups_age(
    standby: Standby, answer_for: Any
) -> None:
    """No replica among the prerequisites: the newest replicated backup's age is the loss, and
    a tighter RPO than that makes it a blocker."""
    standby.replication()
    standby.backup(400, 400)
    code, body, _ = await answer_for(standby.checks(replica=False))
    assert code == 200, body
    cost = body["if_failed_over_now"]
    assert "newest backup replicated to the DR bucket" in cost["basis"]["data_loss"]
    assert 0 <= cost["expected_data_loss_seconds"] < 300
    assert cost["rpo_seconds"] == 86400
    code, body, _ = await answer_for(standby.checks(replica=False), dr_readiness={"rpo": "0s"})
    assert code == 503
    assert body["blockers"][0].startswith("Failing over now loses up to")


async def test_listed_checks_are_the_prerequisites(standby: Standby, answer_for: Any) -> None:
    """dr_readiness.checks chooses the prerequisites instead of the region label."""
    standby.lag(47 * 60)
    standby.replication()
    standby.backup(400, 400)
    code, body, _ = await answer_for(
        standby.checks(), dr_readiness={"checks": ["dr-backups", "dr-stack"]}
    )
    assert code == 200, body
    assert [c["name"] for c in body["checks"]] == ["dr-backups", "dr-stack"]


async def test_without_prerequisites_it_answers_404(answer_for: Any, tmp_path: Path) -> None:
    """Nothing configured is said plainly, and no drwatch_dr_* metric is exported."""
    code, body, metrics = await answer_for(
        [{"name": "local", "type": "backup_files", "params": {"path": str(tmp_path)}}]
    )
    assert code == 404
    assert "region: dr" in body["detail"]
    assert samples(metrics) == {}


def test_unknown_names_under_dr_readiness_are_errors_by_field_path() -> None:
    """A misspelt prerequisite or drill is a configuration error naming its path."""
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "checks": [{"name": "a", "type": "backup_files", "params": {"path": "/tmp"}}],
                "dr_readiness": {"checks": ["a", "b"], "drills": ["monthly"], "rpo": "soon"},
            }
        )
    paths = {path for path, _ in caught.value.errors}
    assert paths == {"dr_readiness.rpo"}
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "checks": [{"name": "a", "type": "backup_files", "params": {"path": "/tmp"}}],
                "dr_readiness": {"checks": ["a", "b"], "drills": ["monthly"]},
            }
        )
    assert dict(caught.value.errors) == {
        "dr_readiness.checks.1": "no check named 'b'",
        "dr_readiness.drills.0": "no drill named 'monthly'",
    }


def test_the_command_prints_the_answer_and_exits_by_it(standby: Standby, tmp_path: Path) -> None:
    """`drwatch dr-readiness --json` runs the prerequisites once: exit 2 while not ready."""
    standby.lag(47 * 60)
    standby.replication()
    standby.backup(400, 400)
    path = tmp_path / "drwatch.yaml"
    path.write_text(yaml.safe_dump({"checks": standby.checks()}))
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "DRWATCH_CONFIG": str(path),
        "DRWATCH_STATE_URL": f"sqlite+aiosqlite:///{tmp_path}/state.db",
        "DRWATCH_LOG_LEVEL": "WARNING",
        **AWS_ENV,
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "dr-readiness", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    assert report["ready"] is False
    assert "47m behind" in report["blockers"][0]
    text = subprocess.run(
        [sys.executable, "-m", "app.cli", "dr-readiness"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert text.returncode == 2
    assert text.stdout.startswith("standby region: NOT READY (fail)")
    assert "data loss: 47m" in text.stdout
