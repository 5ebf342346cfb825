"""The s3_replication check against moto_server: replication rules and the DR bucket's copies.

moto stores replication configurations but does not copy objects, so each test puts the DR copy
(or leaves it out) itself, as replication would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from app.checks.base import Status
from app.checks.s3_replication import S3ReplicationCheck
from tests.fakes.rds_api import AWS_ENV, MotoServer
from tests.fakes.runs import assert_failed, run_once

ROLE = "arn:aws:iam::123456789012:role/lyo-s3-replication"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in AWS_ENV.items():
            env.setenv(name, value)
        server = MotoServer()
        yield server
        server.stop()


def s3(moto: MotoServer, region: str = "eu-west-1") -> Any:
    return boto3.client("s3", endpoint_url=moto.url, region_name=region)


@pytest.fixture
def buckets(moto: MotoServer) -> tuple[str, str]:
    """A versioned backup bucket in eu-west-1 and its versioned DR bucket in us-west-2."""
    suffix = uuid.uuid4().hex[:10]
    source, dr = f"lyo-backups-{suffix}", f"lyo-backups-dr-{suffix}"
    for name, region in ((source, "eu-west-1"), (dr, "us-west-2")):
        s3(moto, region).create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": region}
        )
        s3(moto, region).put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": "Enabled"}
        )
    return source, dr


def replicate(moto: MotoServer, source: str, dr: str, status: str = "Enabled") -> None:
    s3(moto).put_bucket_replication(
        Bucket=source,
        ReplicationConfiguration={
            "Role": ROLE,
            "Rules": [
                {
                    "ID": "backups-to-dr",
                    "Priority": 1,
                    "Status": status,
                    "Filter": {"Prefix": "backups/"},
                    "DeleteMarkerReplication": {"Status": "Disabled"},
                    "Destination": {"Bucket": f"arn:aws:s3:::{dr}"},
                }
            ],
        },
    )


def put(moto: MotoServer, bucket: str, key: str, body: bytes) -> None:
    s3(moto).put_object(Bucket=bucket, Key=key, Body=body)


def check(moto: MotoServer, source: str, dr: str, **params: Any) -> S3ReplicationCheck:
    return S3ReplicationCheck(
        "dr-backups",
        S3ReplicationCheck.Params(
            bucket=source,
            prefix="backups/",
            dr_bucket=dr,
            region="eu-west-1",
            endpoint_url=moto.url,
            dr_region="us-west-2",
            dr_endpoint_url=moto.url,
            **params,
        ),
        timeout=20,
    )


async def test_it_passes_when_the_newest_backup_is_in_the_dr_bucket(
    moto: MotoServer, buckets: tuple[str, str]
) -> None:
    """An enabled rule and an identical copy of the newest backup: the standby has it."""
    source, dr = buckets
    replicate(moto, source, dr)
    for bucket in (source, dr):
        put(moto, bucket, "backups/2026-11-27.dump", b"a" * 300)
        put(moto, bucket, "backups/2026-11-28.dump", b"b" * 400)
    result = await run_once(check(moto, source, dr))
    assert result.status is Status.PASS, result.output
    details = result.details
    assert details["rule"] == "backups-to-dr"
    assert details["newest_backup"] == "backups/2026-11-28.dump"
    assert details["in_dr_bucket"] is True
    assert details["size_bytes"] == details["dr_size_bytes"] == 400
    assert details["last_replicated_backup_at"] == details["newest_backup_at"]
    assert 0 <= details["replication_age_seconds"] < 120


async def test_a_disabled_rule_fails(moto: MotoServer, buckets: tuple[str, str]) -> None:
    """A replication rule that is switched off copies nothing new."""
    source, dr = buckets
    replicate(moto, source, dr, status="Disabled")
    for bucket in (source, dr):
        put(moto, bucket, "backups/2026-11-28.dump", b"b" * 400)
    result = await run_once(check(moto, source, dr))
    assert_failed(result, "disabled", permanent=True)


async def test_a_bucket_without_replication_fails(
    moto: MotoServer, buckets: tuple[str, str]
) -> None:
    """No replication configuration at all is a configuration problem, not a blip."""
    source, dr = buckets
    put(moto, source, "backups/2026-11-28.dump", b"b" * 400)
    result = await run_once(check(moto, source, dr))
    assert_failed(result, "no replication configuration", permanent=True)


async def test_a_rule_to_another_bucket_fails(moto: MotoServer, buckets: tuple[str, str]) -> None:
    """Replication to some other bucket does not bring backups to this standby."""
    source, dr = buckets
    replicate(moto, source, "somewhere-else")
    put(moto, source, "backups/2026-11-28.dump", b"b" * 400)
    result = await run_once(check(moto, source, dr))
    assert_failed(result, "No replication rule", permanent=True)


async def test_a_missing_dr_copy_fails_after_the_grace(
    moto: MotoServer, buckets: tuple[str, str]
) -> None:
    """The newest backup never reached the DR bucket, and no older one did either."""
    source, dr = buckets
    replicate(moto, source, dr)
    put(moto, source, "backups/2026-11-28.dump", b"b" * 400)
    result = await run_once(check(moto, source, dr, replication_grace="0s"))
    assert_failed(result, "None of the newest backups")
    assert result.details["in_dr_bucket"] is False
    assert result.details["last_replicated_backup_at"] is None


async def test_a_missing_newest_copy_warns_within_the_grace(
    moto: MotoServer, buckets: tuple[str, str]
) -> None:
    """A backup uploaded moments ago may still be on its way; the previous one is there."""
    source, dr = buckets
    replicate(moto, source, dr)
    for bucket in (source, dr):
        put(moto, bucket, "backups/2026-11-27.dump", b"a" * 300)
    put(moto, source, "backups/2026-11-28.dump", b"b" * 400)
    result = await run_once(check(moto, source, dr))
    assert result.status is Status.WARN, result.output
    assert "not in" in result.output and "yet" in result.output
    assert result.details["last_replicated_backup_at"] is not None
    late = await run_once(check(moto, source, dr, replication_grace="0s"))
    assert_failed(late, "replication is failing or slow")


async def test_a_dr_copy_of_another_size_fails(moto: MotoServer, buckets: tuple[str, str]) -> None:
    """A truncated copy in the DR bucket would not restore."""
    source, dr = buckets
    replicate(moto, source, dr)
    put(moto, source, "backups/2026-11-28.dump", b"b" * 400)
    put(moto, dr, "backups/2026-11-28.dump", b"b" * 100)
    result = await run_once(check(moto, source, dr))
    assert_failed(result, "100 B", "400 B", "incomplete")
    assert result.details["dr_size_bytes"] == 100


async def test_a_dr_copy_with_other_bytes_fails(moto: MotoServer, buckets: tuple[str, str]) -> None:
    """Same size, different single-part ETag: the DR copy is another object."""
    source, dr = buckets
    replicate(moto, source, dr)
    put(moto, source, "backups/2026-11-28.dump", b"b" * 400)
    put(moto, dr, "backups/2026-11-28.dump", b"c" * 400)
    result = await run_once(check(moto, source, dr))
    assert_failed(result, "ETag")
    unchecked = await run_once(check(moto, source, dr, compare_etag=False))
    assert unchecked.status is Status.PASS, unchecked.output


async def test_it_fails_without_backups(moto: MotoServer, buckets: tuple[str, str]) -> None:
    """An empty prefix has nothing to replicate."""
    source, dr = buckets
    replicate(moto, source, dr)
    result = await run_once(check(moto, source, dr))
    assert_failed(result, "No backup objects")


async def test_a_missing_bucket_fails_permanently(moto: MotoServer) -> None:
    """A wrong bucket name cannot fix itself."""
    result = await run_once(check(moto, "no-such-bucket-x", "no-such-dr-bucket"))
    assert_failed(result, permanent=True)
