"""RDS restore drills against moto_server (snapshots, point-in-time and cross-region restores,
tags, deletion, Secrets Manager) with the integrity queries run against a real PostgreSQL
loaded from a dump, standing in for the restored instance through ``connect_host``; and
against an RDS API server whose restored instance never becomes available."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from app import logs
from app.config import parse_config
from app.drills.rds import instance_name
from app.drills.run import BackupRef, run_drill
from app.drills.spec import DrillSpec
from app.errors import ConfigError
from tests.credentials import fake_secret
from tests.drills.scratch import Dumps
from tests.fakes.rds_api import FakeRds, Instance, MotoServer, Snapshot
from tests.harness import running_app, settings_for
from tests.servers import PG_BIN, PostgresCluster

PRIMARY, DR = "eu-west-1", "us-west-2"
PASSWORD = fake_secret("pw-", 24)
DRILL = "monthly-rds"


@pytest.fixture(scope="module")
def restored(dumps: Dumps) -> Iterator[PostgresCluster]:
    """What a restored instance would serve: the booking database of the dump, and the master
    user 'lyoadmin' with the password kept in Secrets Manager."""
    cluster = PostgresCluster.create(name="rds-restored")
    cluster.psql("CREATE DATABASE lyo_production")
    subprocess.run(
        [
            str(PG_BIN / "pg_restore"),
            "--no-owner",
            "-d",
            cluster.dsn_for("lyo_production"),
            str(dumps.custom),
        ],
        check=True,
        capture_output=True,
    )
    cluster.add_password_user("lyoadmin", PASSWORD)
    cluster.psql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO lyoadmin", "lyo_production")
    yield cluster
    cluster.destroy()


@pytest.fixture
def drwatch_logs() -> Iterator[io.StringIO]:
    """What drwatch's own logging writes at DEBUG (its formatter, its logger levels)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    quieted = {n: logging.getLogger(n).level for n in ("botocore", "boto3", "urllib3")}
    logs.configure("DEBUG", "json")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root.addHandler(handler)
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])
    for name, level in quieted.items():
        logging.getLogger(name).setLevel(level)


def client(moto: MotoServer, service: str, region: str = PRIMARY) -> Any:
    return boto3.client(service, endpoint_url=moto.url, region_name=region)


@pytest.fixture(scope="module")
def primary(moto: MotoServer) -> str:
    """The production instance in eu-west-1 (moto takes its first automated snapshot)."""
    identifier = f"lyo-{uuid.uuid4().hex[:8]}"
    client(moto, "rds").create_db_instance(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t3.small",
        Engine="postgres",
        MasterUsername="lyoadmin",
        MasterUserPassword=PASSWORD,
        AllocatedStorage=20,
        BackupRetentionPeriod=7,
    )
    return identifier


@pytest.fixture(scope="module")
def secret_arn(moto: MotoServer) -> str:
    answer = client(moto, "secretsmanager").create_secret(
        Name=f"lyo/db-{uuid.uuid4().hex[:6]}",
        SecretString=json.dumps({"username": "lyoadmin", "password": PASSWORD}),
    )
    return str(answer["ARN"])


INTEGRITY = [
    {"name": "tenants", "sql": "SELECT count(*) FROM tenants", "expect": ">= 3"},
    {"name": "appointments", "sql": "SELECT count(*) FROM appointments", "expect": "== 42"},
]


def spec(
    moto: MotoServer, primary: str, secret_arn: str, restored: PostgresCluster, **rds: Any
) -> DrillSpec:
    integrity = rds.pop("integrity", INTEGRITY)
    timeout = rds.pop("timeout", "2m")
    options = {
        "db_instance_identifier": primary,
        "region": PRIMARY,
        "endpoint_url": moto.url,
        "password_secret_arn": secret_arn,
        "secrets_endpoint_url": moto.url,
        "database": "lyo_production",
        "connect_host": "127.0.0.1",
        "connect_port": restored.port,
        "poll_interval": "1s",
        **rds,
    }
    return DrillSpec.model_validate(
        {
            "name": DRILL,
            "source": "snapshots",
            "rds": options,
            "rpo": "24h",
            "timeout": timeout,
            "integrity": integrity,
        }
    )


def backup() -> BackupRef:
    return BackupRef("arn:aws:rds:eu-west-1:123456789012:db:lyo", datetime.now(UTC), None, None)


def exists(moto: MotoServer, identifier: str, region: str = PRIMARY) -> bool:
    try:
        client(moto, "rds", region).describe_db_instances(DBInstanceIdentifier=identifier)
    except ClientError:
        return False
    return True


def tagged_instance(moto: MotoServer, identifier: str, tags: dict[str, str]) -> None:
    client(moto, "rds").create_db_instance(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="lyoadmin",
        MasterUserPassword=PASSWORD,
        AllocatedStorage=20,
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )


async def test_it_restores_the_newest_snapshot_checks_it_and_deletes_the_instance(
    moto: MotoServer, primary: str, secret_arn: str, restored: PostgresCluster
) -> None:
    """The newest automated snapshot restores into a tagged drwatch-drill-* instance, the
    integrity queries pass, the instance is deleted, and the run is timed."""
    lines: list[str] = []
    report = await run_drill(
        spec(
            moto,
            primary,
            secret_arn,
            restored,
            integrity=[
                *INTEGRITY,
                {
                    "name": "fresh",
                    "sql": "SELECT max(created_at) FROM appointments",
                    "within_rpo_of_backup": True,
                },
            ],
        ),
        backup(),
        progress=lines.append,
    )
    assert report.status == "pass", report.message
    assert report.database.startswith(f"drwatch-drill-{DRILL}-")
    assert [(r.name, r.passed) for r in report.integrity] == [
        ("tenants", True),
        ("appointments", True),
        ("fresh", True),
    ]
    assert report.backup_format == "rds snapshot (automated)"
    assert f":{PRIMARY}:" in report.backup_location and ":snapshot:" in report.backup_location
    assert report.restore_seconds is not None and report.total_seconds is not None
    assert report.total_seconds >= report.restore_seconds
    assert report.data_loss_seconds is not None
    assert report.database_dropped is True
    assert not exists(moto, report.database)
    assert "all 3 integrity checks passed" in report.message
    assert any(f"deleting {report.database}" in line for line in lines)


async def test_it_restores_the_latest_restorable_time(
    moto: MotoServer, primary: str, secret_arn: str, restored: PostgresCluster
) -> None:
    """point_in_time: latest restores the instance as of its LatestRestorableTime."""
    report = await run_drill(
        spec(moto, primary, secret_arn, restored, point_in_time="latest"), backup()
    )
    assert report.status == "pass", report.message
    assert report.backup_format == "rds point-in-time"
    assert "(point in time)" in report.backup_location
    assert not exists(moto, report.database)


async def test_it_restores_the_copy_in_the_dr_region(
    moto: MotoServer, primary: str, secret_arn: str, restored: PostgresCluster
) -> None:
    """A snapshot copied to us-west-2 restores there: the DR copy is usable."""
    rds = client(moto, "rds")
    snapshot = f"{primary}-manual-{uuid.uuid4().hex[:4]}"
    rds.create_db_snapshot(DBInstanceIdentifier=primary, DBSnapshotIdentifier=snapshot)
    arn = rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot)["DBSnapshots"][0]
    client(moto, "rds", DR).copy_db_snapshot(
        SourceDBSnapshotIdentifier=arn["DBSnapshotArn"],
        TargetDBSnapshotIdentifier=f"{snapshot}-dr",
        SourceRegion=PRIMARY,
    )
    report = await run_drill(
        spec(moto, primary, secret_arn, restored, region=DR, snapshot="any"), backup()
    )
    assert report.status == "pass", report.message
    assert report.backup_location.endswith(f":snapshot:{snapshot}-dr")
    assert f":rds:{DR}:" in report.backup_location
    assert not exists(moto, report.database, DR)


async def test_failing_integrity_fails_the_drill_and_still_deletes_the_instance(
    moto: MotoServer, primary: str, secret_arn: str, restored: PostgresCluster
) -> None:
    """A restored database that lacks data fails, with the query's finding."""
    report = await run_drill(
        spec(
            moto,
            primary,
            secret_arn,
            restored,
            integrity=[
                {
                    "name": "appointments",
                    "sql": "SELECT count(*) FROM appointments",
                    "expect": "== 43",
                }
            ],
        ),
        backup(),
    )
    assert report.status == "fail"
    assert "Integrity check 'appointments' failed" in report.message
    assert "Observed 42, expected == 43" in report.message
    assert report.database_dropped is True
    assert not exists(moto, report.database)


async def test_a_leftover_of_a_crashed_run_is_deleted_at_the_next_run(
    moto: MotoServer, primary: str, secret_arn: str, restored: PostgresCluster
) -> None:
    """An instance with the drill's name and tag, left by a run that died, is deleted."""
    leftover = instance_name(DRILL, datetime(2026, 1, 1, 3, 0, tzinfo=UTC))
    tagged_instance(moto, leftover, {"drwatch:drill": DRILL})
    report = await run_drill(spec(moto, primary, secret_arn, restored), backup())
    assert report.status == "pass", report.message
    assert not exists(moto, leftover)


async def test_an_untagged_instance_with_the_prefix_is_never_deleted(
    moto: MotoServer, primary: str, secret_arn: str, restored: PostgresCluster
) -> None:
    """The name alone is not proof that drwatch made it; nor is another drill's tag."""
    untagged = instance_name(DRILL, datetime(2026, 1, 1, 3, 0, 1, tzinfo=UTC))
    tagged_instance(moto, untagged, {"team": "payments"})
    try:
        report = await run_drill(spec(moto, primary, secret_arn, restored), backup())
        assert report.status == "pass", report.message
        assert exists(moto, untagged)
    finally:
        client(moto, "rds").delete_db_instance(
            DBInstanceIdentifier=untagged, SkipFinalSnapshot=True
        )


async def test_it_refuses_to_start_past_the_instance_cap(
    moto: MotoServer, primary: str, secret_arn: str, restored: PostgresCluster
) -> None:
    """Another drill's instance exists and max_instances is 1: no second instance is made."""
    other = instance_name("weekly-rds", datetime(2026, 1, 1, 3, 0, tzinfo=UTC))
    tagged_instance(moto, other, {"drwatch:drill": "weekly-rds"})
    try:
        before = {
            i["DBInstanceIdentifier"]
            for i in client(moto, "rds").describe_db_instances()["DBInstances"]
        }
        report = await run_drill(spec(moto, primary, secret_arn, restored), backup())
        assert report.status == "fail"
        assert "at most 1 may run at once (max_instances)" in report.message
        assert other in report.message
        after = {
            i["DBInstanceIdentifier"]
            for i in client(moto, "rds").describe_db_instances()["DBInstances"]
        }
        assert after == before
        raised = await run_drill(
            spec(moto, primary, secret_arn, restored, max_instances=2), backup()
        )
        assert raised.status == "pass", raised.message
        assert exists(moto, other)
    finally:
        client(moto, "rds").delete_db_instance(DBInstanceIdentifier=other, SkipFinalSnapshot=True)


async def test_an_instance_that_never_becomes_available_times_out_and_is_deleted(
    aws_env: None, tmp_path: Path
) -> None:
    """The restored instance stays 'creating': the drill stops at its timeout and deletes it."""
    fake = FakeRds()
    try:
        fake.add(
            Instance(
                "lyo",
                datetime.now(UTC),
                region=PRIMARY,
                snapshots=[Snapshot("rds:lyo-2026-11-28-03-00", datetime.now(UTC))],
            )
        )
        password_file = tmp_path / "password"
        password_file.write_text(PASSWORD + "\n")
        drill = DrillSpec.model_validate(
            {
                "name": DRILL,
                "source": "snapshots",
                "timeout": "3s",
                "rds": {
                    "db_instance_identifier": "lyo",
                    "region": PRIMARY,
                    "endpoint_url": fake.url,
                    "password_file": str(password_file),
                    "poll_interval": "1s",
                },
            }
        )
        report = await run_drill(drill, backup())
        assert report.status == "fail"
        assert "did not finish within its 3s timeout" in report.message
        assert "waiting for the instance" in report.message
        assert report.restore_seconds is None
        assert report.database_dropped is True
        assert fake.deleted == [report.database]
        assert list(fake.instances) == ["lyo"]
    finally:
        fake.stop()


async def test_the_password_never_leaves_drwatch(
    moto: MotoServer,
    primary: str,
    secret_arn: str,
    restored: PostgresCluster,
    tmp_path: Path,
    drwatch_logs: io.StringIO,
) -> None:
    """Run through the API: no response, log line or metric carries the master password; the
    readiness answer takes its recovery time from the drill."""
    rds = spec(moto, primary, secret_arn, restored).rds
    assert rds is not None
    config = {
        "checks": [
            {
                "name": "snapshots",
                "type": "rds",
                "labels": {"region": "dr"},
                "params": {
                    "db_instance_identifier": primary,
                    "region": PRIMARY,
                    "endpoint_url": moto.url,
                },
            }
        ],
        "drills": [
            {
                "name": DRILL,
                "source": "snapshots",
                "rto": "4h",
                "rds": {
                    "password_secret_arn": secret_arn,
                    "secrets_endpoint_url": moto.url,
                    "database": "lyo_production",
                    "connect_host": "127.0.0.1",
                    "connect_port": restored.port,
                    "poll_interval": "1s",
                },
                "integrity": [
                    {"name": "nope", "sql": "SELECT count(*) FROM no_such_table", "expect": ">= 0"}
                ],
            },
            {
                "name": "weekly-rds",
                "source": "snapshots",
                "rds": {
                    "password_secret_arn": secret_arn,
                    "secrets_endpoint_url": moto.url,
                    "database": "lyo_production",
                    "connect_host": "127.0.0.1",
                    "connect_port": restored.port,
                    "poll_interval": "1s",
                },
                "integrity": INTEGRITY,
            },
        ],
    }
    admin = {"Authorization": "Bearer admin-token-1234"}
    bodies: list[str] = []
    async with running_app(config, settings_for(tmp_path, admin_token="admin-token-1234")) as app:
        await app.wait_ready(60)
        for name in (DRILL, "weekly-rds"):
            started = await app.client.post(f"/api/drills/{name}/run", headers=admin)
            assert started.status_code == 202, started.text
            await app.wait_until(lambda n=name: n not in app.runtime.drills.running, 120)
            runs = await app.client.get(f"/api/drills/{name}/runs")
            bodies.append(runs.text)
        for path in ("/api/backup-status", "/metrics", "/api/dr-readiness", "/api/checks"):
            bodies.append((await app.client.get(path)).text)
        readiness = (await app.client.get("/api/dr-readiness")).json()
    failed, passed = (json.loads(b)["runs"][0] for b in bodies[:2])
    assert failed["status"] == "fail" and passed["status"] == "pass", (failed, passed)
    cost = readiness["if_failed_over_now"]
    assert cost["basis"]["recovery"].startswith("last successful restore drill weekly-rds on")
    assert cost["expected_recovery_seconds"] == pytest.approx(
        passed["report"]["total_seconds"], abs=0.01
    )
    assert any("The last restore drill monthly-rds failed" in b for b in readiness["blockers"])
    shown = "\n".join(bodies) + drwatch_logs.getvalue()
    assert PASSWORD not in shown
    assert "lyo_production" in shown  # the logs and answers were really collected


def _drill_errors(drill: dict[str, Any]) -> dict[str, str]:
    checks = [
        {"name": "snapshots", "type": "rds", "params": {"db_instance_identifier": "lyo"}},
        {"name": "dumps", "type": "backup_files", "params": {"path": "/backups"}},
    ]
    try:
        parse_config({"checks": checks, "drills": [drill]})
    except ConfigError as exc:
        return dict(exc.errors)
    return {}


def test_a_drill_of_an_rds_check_needs_its_rds_section() -> None:
    """A snapshot source restores into an instance, not into target_dsn; and the other way."""
    errors = _drill_errors(
        {"name": "d", "source": "snapshots", "target_dsn": "postgresql://u:p@scratch:5432/x"}
    )
    assert "set rds (with password_secret_arn or password_file)" in errors["drills.0.rds"]
    errors = _drill_errors(
        {"name": "d", "source": "dumps", "rds": {"password_file": "/run/secrets/pw"}}
    )
    assert "whose dumps restore into target_dsn" in errors["drills.0.rds"]
    errors = _drill_errors({"name": "d", "source": "snapshots", "rds": {}})
    assert errors == {"drills.0.rds": "set exactly one of password_secret_arn and password_file"}
    errors = _drill_errors({"name": "d", "source": "snapshots"})
    assert "set exactly one of target_dsn" in errors["drills.0"]


def test_the_rds_section_defaults_to_the_source_checks_instance() -> None:
    """Instance, region and endpoint come from the rds check unless the drill says otherwise."""
    config = parse_config(
        {
            "checks": [
                {
                    "name": "snapshots",
                    "type": "rds",
                    "params": {"db_instance_identifier": "lyo", "region": PRIMARY},
                }
            ],
            "drills": [
                {
                    "name": "dr-copy",
                    "source": "snapshots",
                    "rds": {"region": DR, "password_file": "/run/secrets/pw"},
                }
            ],
        }
    )
    rds = config.drills[0].rds
    assert rds is not None
    assert (rds.db_instance_identifier, rds.region, rds.instance_class) == (
        "lyo",
        DR,
        "db.t3.micro",
    )
    assert rds.max_instances == 1
