"""The s3 check against moto_server, a real S3 API on 127.0.0.1."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from app.checks.base import Result, Status
from app.checks.s3 import S3Check
from tests.checks.backup_contract import BACKUP_KEYS
from tests.fakes.rds_api import AWS_ENV, MotoServer
from tests.fakes.runs import assert_failed, run_once
from tests.polling import eventually


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in AWS_ENV.items():
            env.setenv(name, value)
        server = MotoServer()
        yield server
        server.stop()


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    name = f"backups-{uuid.uuid4().hex[:12]}"
    client(moto).create_bucket(Bucket=name)
    return name


def client(moto: MotoServer) -> Any:
    return boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")


def put(moto: MotoServer, bucket: str, key: str, size: int) -> None:
    client(moto).put_object(Bucket=bucket, Key=key, Body=b"x" * size)


def check(moto: MotoServer, bucket: str, **params: Any) -> S3Check:
    return S3Check(
        "offsite",
        S3Check.Params(bucket=bucket, endpoint_url=moto.url, region="us-east-1", **params),
        timeout=20,
    )


async def run(probe: S3Check) -> Result:
    result = await run_once(probe)
    assert set(result.details) >= BACKUP_KEYS, result.details
    return result


def name_at(hours_ago: float) -> str:
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    return f"backup_{at:%Y%m%d_%H%M%S}.dump"


async def test_it_passes_with_the_newest_object_and_its_size(moto: MotoServer, bucket: str) -> None:
    """The most recently uploaded object under the prefix gives the age, size and location."""
    put(moto, bucket, "db/z-older.dump", 3000)
    # S3 keeps LastModified to the second: start the next upload in the next second.
    second = int(time.time())
    await eventually(lambda: int(time.time()) > second, timeout=2)
    put(moto, bucket, "db/a-newer.dump", 2500)
    put(moto, bucket, "other/unrelated.dump", 10)
    result = await run(check(moto, bucket, prefix="db/"))
    assert result.status is Status.PASS, result.output
    assert result.details["location"] == f"s3://{bucket}/db/a-newer.dump"
    assert result.details["size_bytes"] == 2500
    assert result.details["within_rpo"] is True
    assert result.details["age_seconds"] < 300
    assert result.details["verified"] is None


async def test_it_reads_every_page_of_a_large_prefix(moto: MotoServer, bucket: str) -> None:
    """With two keys per page, the newest backup on the last page is still found."""
    for hours in range(30, 23, -1):
        put(moto, bucket, f"db/{name_at(hours)}", 1000)
    newest = f"db/{name_at(2)}"
    put(moto, bucket, newest, 1000)
    result = await run(check(moto, bucket, prefix="db/", page_size=2, timestamp="name"))
    assert result.status is Status.PASS, result.output
    assert result.details["location"] == f"s3://{bucket}/{newest}"
    assert result.details["objects_listed"] == 8
    assert result.details["list_requests"] == 4


async def test_it_fails_when_the_newest_object_is_older_than_the_rpo(
    moto: MotoServer, bucket: str
) -> None:
    """Dated keys 30 hours old are past a 24 h RPO."""
    key = f"db/{name_at(30)}"
    put(moto, bucket, key, 1000)
    result = await run(check(moto, bucket, prefix="db/", timestamp="name", rpo="24h"))
    assert_failed(result, key, "older than the 1d RPO")
    assert result.details["within_rpo"] is False
    assert result.details["age_seconds"] > 24 * 3600


async def test_it_falls_back_when_the_newest_object_is_empty(moto: MotoServer, bucket: str) -> None:
    """A zero-byte upload is named as bad; the age comes from the newest real backup."""
    good = f"db/{name_at(5)}"
    empty = f"db/{name_at(1)}"
    put(moto, bucket, good, 1000)
    put(moto, bucket, empty, 0)
    put(moto, bucket, f"{good}.sha256", 64)
    result = await run(check(moto, bucket, prefix="db/", timestamp="name"))
    assert_failed(result, empty, "empty")
    assert result.details["location"] == f"s3://{bucket}/{good}"
    assert result.details["bad_files"] == [
        {"path": f"s3://{bucket}/{empty}", "problem": "empty (0 bytes)"}
    ]


async def test_it_warns_when_the_newest_object_shrank(moto: MotoServer, bucket: str) -> None:
    """An upload a tenth the size of the earlier ones is suspicious."""
    for hours in (72, 48, 24):
        put(moto, bucket, f"db/{name_at(hours)}", 10_000)
    put(moto, bucket, f"db/{name_at(1)}", 1_000)
    result = await run(check(moto, bucket, prefix="db/", timestamp="name"))
    assert result.status is Status.WARN, result.output
    assert "90% smaller" in result.output


async def test_it_fails_permanently_when_the_bucket_does_not_exist(moto: MotoServer) -> None:
    """A missing bucket cannot fix itself; the RPO is still reported."""
    result = await run(check(moto, "no-such-bucket-drwatch"))
    assert_failed(result, "does not exist", permanent=True)
    assert result.details["rpo_seconds"] == 86400
    assert result.details["last_backup_at"] is None


async def test_it_fails_when_the_prefix_is_empty(moto: MotoServer, bucket: str) -> None:
    """No objects under the prefix means the upload never ran or goes elsewhere."""
    put(moto, bucket, "elsewhere/x.dump", 10)
    result = await run(check(moto, bucket, prefix="db/"))
    assert_failed(result, "No backup objects")


async def test_it_fails_permanently_without_credentials(
    moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """With nothing in the AWS credential chain the check says how to provide credentials."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    result = await run(check(moto, bucket))
    assert_failed(result, "No AWS credentials", permanent=True)


async def test_it_lists_only_keys_after_the_newest_seen_when_keys_sort_by_date(
    moto: MotoServer, bucket: str
) -> None:
    """Incremental listing (StartAfter) skips keys that sort before the newest one seen."""
    put(moto, bucket, f"db/{name_at(3)}", 1000)
    put(moto, bucket, f"db/{name_at(2)}", 1000)
    incremental = check(moto, bucket, prefix="db/", keys_sorted_by_date=True)
    try:
        first = await incremental.run()
        assert first.details["objects_listed"] == 2
        newest = f"db/{name_at(0.5)}"
        put(moto, bucket, newest, 1000)
        # A key that sorts first is not a dated backup; incremental listing never sees it.
        put(moto, bucket, "db/aaa-late-upload.dump", 1000)
        second = await incremental.run()
        assert second.details["objects_listed"] == 1
        assert second.details["location"] == f"s3://{bucket}/{newest}"
        third = await incremental.run()
        assert third.details["objects_listed"] == 0
        assert third.details["location"] == f"s3://{bucket}/{newest}"
    finally:
        await incremental.close()
    full = await run(check(moto, bucket, prefix="db/"))
    assert full.details["objects_listed"] == 4


async def test_it_relists_when_the_newest_known_object_was_deleted(
    moto: MotoServer, bucket: str
) -> None:
    """Incremental listing notices a deleted backup instead of reporting it forever."""
    older = f"db/{name_at(3)}"
    put(moto, bucket, older, 1000)
    newest = f"db/{name_at(2)}"
    put(moto, bucket, newest, 1000)
    incremental = check(moto, bucket, prefix="db/", keys_sorted_by_date=True)
    try:
        await incremental.run()
        client(moto).delete_object(Bucket=bucket, Key=newest)
        result = await incremental.run()
        assert result.details["location"] == f"s3://{bucket}/{older}"
    finally:
        await incremental.close()


async def test_it_skips_keys_up_to_start_after(moto: MotoServer, bucket: str) -> None:
    """start_after hides keys that sort before it, from the first run on."""
    put(moto, bucket, "db/2026-01-01.dump", 1000)
    put(moto, bucket, "db/2026-02-01.dump", 1000)
    result = await run(check(moto, bucket, prefix="db/", start_after="db/2026-01-15"))
    assert result.details["objects_listed"] == 1
    assert result.details["location"] == f"s3://{bucket}/db/2026-02-01.dump"
