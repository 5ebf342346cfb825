"""``s3_replication``: the backup bucket replicates to the DR bucket, and the newest backup is
there.

Each run reads the bucket's replication configuration (``GetBucketReplication``): an enabled rule
must send the objects under ``prefix`` to ``dr_bucket``. It then finds the newest backup under
``prefix`` (``ListObjectsV2``, all pages) and looks for it in the DR bucket (``HeadObject`` there):
it must exist with the same size, and the same ETag where both are plain MD5s (multipart and
KMS-encrypted uploads have ETags that differ between copies). A newest backup missing from the
DR bucket is ``warn`` while it is younger than ``replication_grace`` (S3 Replication Time Control
replicates 99.99 % of objects within 15 minutes), ``fail`` after that.

The newest backup present in the DR bucket is the recovery point a failover keeps; its age
(``replication_age_seconds``) is held against ``rpo`` and is the expected data loss
``/api/dr-readiness`` reports when there is no replica.
"""

from __future__ import annotations

import asyncio
import fnmatch
import heapq
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from app.checks import base
from app.checks._aws import aws_client, aws_failure, error_code
from app.checks.base import Check, CheckFailed, Criticality, Result, Status
from app.units import Duration, format_duration, format_size, rfc3339

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ReplicationRuleOutputTypeDef

# How many of the newest backups to look for in the DR bucket when the newest is not there yet.
_LOOK_BACK = 5
_SIDECAR_SUFFIX = ".sha256"


@dataclass(frozen=True, order=True)
class _Object:
    uploaded_at: datetime
    key: str
    size: int = field(compare=False)
    etag: str = field(compare=False, default="")


@dataclass
class _Copy:
    """What the DR bucket holds under a key, or None for missing."""

    size: int
    etag: str


@dataclass
class _Found:
    rules: list[ReplicationRuleOutputTypeDef]
    newest: list[_Object]
    copies: dict[str, _Copy | None]
    replication_status: str | None


class S3ReplicationCheck(Check["S3ReplicationCheck.Params"]):
    """Fails when no enabled rule replicates ``prefix`` to ``dr_bucket``, when the newest backup
    is missing there past ``replication_grace`` or differs in size, or when the newest replicated
    backup is older than ``rpo``.
    """

    class Params(base.Params):
        bucket: str = Field(min_length=3, description="The bucket the backups are uploaded to.")
        prefix: str = Field("", description="Only keys under this prefix, e.g. backups/db/.")
        dr_bucket: str = Field(
            min_length=3, description="The bucket in the standby region the rule replicates to."
        )
        pattern: str | None = Field(
            None,
            description="Glob on the key after the prefix, e.g. *.dump; default: every key.",
        )
        rpo: Duration = Field(
            86400.0,
            description="Fail when the newest backup in the DR bucket is older than this.",
        )
        replication_grace: Duration = Field(
            900.0,
            description="How long a new backup may take to appear in the DR bucket (warn, "
            "not fail, meanwhile).",
        )
        compare_etag: bool = Field(
            True, description="Compare ETags too when both are plain MD5s (single-part uploads)."
        )
        region: str | None = Field(None, description="AWS region of the backup bucket.")
        endpoint_url: str | None = Field(
            None, description="S3 endpoint of the backup bucket instead of AWS's (a test server)."
        )
        dr_region: str | None = Field(None, description="AWS region of the DR bucket.")
        dr_endpoint_url: str | None = Field(
            None, description="S3 endpoint of the DR bucket instead of AWS's (a test server)."
        )

    default_criticality: ClassVar[Criticality] = "info"
    default_interval: ClassVar[float] = 300.0
    default_timeout: ClassVar[float] = 60.0
    failover_data_loss_key: ClassVar[str | None] = "last_replicated_backup_at"
    failover_data_loss_rank: ClassVar[int] = 50
    failover_data_loss_basis: ClassVar[str] = "age of the newest backup replicated to the DR bucket"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: S3Client | None = None
        self._dr_client: S3Client | None = None

    async def run(self) -> Result:
        p = self.params
        found = await asyncio.to_thread(self._read)
        now = datetime.now(UTC)
        details: dict[str, Any] = {
            "bucket": p.bucket,
            "prefix": p.prefix,
            "dr_bucket": p.dr_bucket,
            "rule": None,
            "newest_backup": None,
            "newest_backup_at": None,
            "size_bytes": None,
            "dr_size_bytes": None,
            "in_dr_bucket": False,
            "replication_status": found.replication_status,
            "last_replicated_backup_at": None,
            "replication_age_seconds": None,
            "rpo_seconds": p.rpo,
        }
        rule_problem = self._judge_rules(found.rules, details)
        if rule_problem is not None:
            return self.failed(rule_problem, details=details, permanent=True)
        if not found.newest:
            return self.failed(
                f"No backup objects under s3://{p.bucket}/{p.prefix}; nothing is there to "
                "replicate. The backup job writes elsewhere, or has never run.",
                details=details,
            )
        newest = found.newest[0]
        copy = found.copies.get(newest.key)
        newest_age = max(0.0, (now - newest.uploaded_at).total_seconds())
        details.update(
            newest_backup=newest.key,
            newest_backup_at=rfc3339(newest.uploaded_at),
            size_bytes=newest.size,
            dr_size_bytes=copy.size if copy else None,
            in_dr_bucket=copy is not None,
        )
        replicated = next(
            (o for o in found.newest if _matches(o, found.copies.get(o.key), p.compare_etag)),
            None,
        )
        age: float | None = None
        if replicated is not None:
            age = max(0.0, (now - replicated.uploaded_at).total_seconds())
            details.update(
                last_replicated_backup_at=rfc3339(replicated.uploaded_at),
                replication_age_seconds=age,
            )
        where = f"s3://{p.dr_bucket}/{newest.key}"
        if found.replication_status == "FAILED":
            return self.failed(
                f"S3 reports the replication of {newest.key} to {p.dr_bucket} as FAILED; check "
                "the replication role's permissions and the DR bucket's versioning and KMS key.",
                details=details,
            )
        if copy is not None and copy.size != newest.size:
            return self.failed(
                f"{where} is {format_size(copy.size)}, the backup is {format_size(newest.size)}; "
                "the DR copy is incomplete or another object.",
                details=details,
            )
        if copy is not None and not _matches(newest, copy, p.compare_etag):
            return self.failed(
                f"{where} has ETag {copy.etag}, the backup {newest.etag}; the DR copy holds "
                "other bytes than the backup.",
                details=details,
            )
        if age is None:
            return self.failed(
                f"None of the newest backups under s3://{p.bucket}/{p.prefix} is in "
                f"{p.dr_bucket}; replication is not copying them, so the standby region has "
                "no backup to restore.",
                details=details,
            )
        stale = age > p.rpo
        if copy is None:
            status = Status.WARN if newest_age <= p.replication_grace and not stale else Status.FAIL
            message = (
                f"The newest backup {newest.key} ({format_duration(newest_age)} old) is not in "
                f"{p.dr_bucket}"
                + (
                    " yet"
                    if status is Status.WARN
                    else f" after the {format_duration(p.replication_grace)} grace; replication "
                    "is failing or slow"
                )
                + f"; the newest replicated backup is {format_duration(age)} old "
                f"(RPO {format_duration(p.rpo)})."
            )
            return Result(status, message, age, "s", details=details)
        if stale:
            return self.failed(
                f"The newest backup in {p.dr_bucket}, {replicated.key if replicated else '?'}, "
                f"is {format_duration(age)} old, older than the {format_duration(p.rpo)} RPO; "
                "the backups themselves have stopped.",
                observed_value=age,
                observed_unit="s",
                details=details,
            )
        return self.passed(
            f"The newest backup {newest.key} ({format_size(newest.size)}) is in {p.dr_bucket}, "
            f"{format_duration(age)} old (RPO {format_duration(p.rpo)}).",
            observed_value=age,
            observed_unit="s",
            details=details,
        )

    def _judge_rules(
        self, rules: list[ReplicationRuleOutputTypeDef], details: dict[str, Any]
    ) -> str | None:
        p = self.params
        target = f"arn:aws:s3:::{p.dr_bucket}"
        to_dr = [
            rule
            for rule in rules
            if rule.get("Destination", {}).get("Bucket") in (target, p.dr_bucket)
            and p.prefix.startswith(_rule_prefix(rule))
        ]
        if not to_dr:
            return (
                f"No replication rule of {p.bucket} sends s3://{p.bucket}/{p.prefix} to "
                f"{p.dr_bucket}; backups do not reach the standby region."
            )
        enabled = [rule for rule in to_dr if rule.get("Status") == "Enabled"]
        if not enabled:
            names = ", ".join(str(rule.get("ID", "(no id)")) for rule in to_dr)
            return (
                f"The replication rule of {p.bucket} to {p.dr_bucket} ({names}) is disabled; "
                "new backups are not copied to the standby region."
            )
        details["rule"] = enabled[0].get("ID")
        return None

    async def close(self) -> None:
        for client in (self._client, self._dr_client):
            if client is not None:
                client.close()
        self._client = self._dr_client = None

    # -- AWS calls (in a worker thread)

    def _read(self) -> _Found:
        p = self.params
        try:
            if self._client is None:
                self._client = aws_client("s3", p.region, p.endpoint_url, self.timeout)
            try:
                configuration = self._client.get_bucket_replication(Bucket=p.bucket)
            except ClientError as exc:
                if error_code(exc) != "ReplicationConfigurationNotFoundError":
                    raise
                raise CheckFailed(
                    f"The bucket {p.bucket} has no replication configuration; backups are not "
                    f"copied to {p.dr_bucket}.",
                    permanent=True,
                ) from None
            rules = list(configuration.get("ReplicationConfiguration", {}).get("Rules", []))
            newest = self._newest(self._client)
            replication_status = None
            if newest:
                head = self._client.head_object(Bucket=p.bucket, Key=newest[0].key)
                replication_status = head.get("ReplicationStatus")
        except (ClientError, BotoCoreError) as exc:
            raise aws_failure(exc, f"S3 bucket {p.bucket}", missing={"NoSuchBucket"}) from None
        copies: dict[str, _Copy | None] = {}
        try:
            if self._dr_client is None:
                self._dr_client = aws_client("s3", p.dr_region, p.dr_endpoint_url, self.timeout)
            for found in newest:
                copies[found.key] = copy = self._copy(self._dr_client, found.key)
                if copy is not None and copy.size == found.size:
                    break
        except (ClientError, BotoCoreError) as exc:
            raise aws_failure(
                exc, f"the DR bucket {p.dr_bucket}", missing={"NoSuchBucket"}
            ) from None
        return _Found(rules, newest, copies, replication_status)

    def _newest(self, client: S3Client) -> list[_Object]:
        p = self.params
        newest: list[_Object] = []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=p.bucket, Prefix=p.prefix
        ):
            for entry in page.get("Contents", []):
                key = entry["Key"]
                if key.endswith("/") or key.endswith(_SIDECAR_SUFFIX):
                    continue
                if p.pattern is not None and not fnmatch.fnmatchcase(
                    key[len(p.prefix) :], p.pattern
                ):
                    continue
                at = entry["LastModified"]
                at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
                newest.append(_Object(at, key, int(entry.get("Size", 0)), entry.get("ETag", "")))
            newest = heapq.nlargest(_LOOK_BACK, newest)
        return newest

    def _copy(self, client: S3Client, key: str) -> _Copy | None:
        try:
            head = client.head_object(Bucket=self.params.dr_bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                if error_code(exc) == "NoSuchBucket":
                    raise
                return None
            raise
        return _Copy(int(head.get("ContentLength", 0)), head.get("ETag", ""))


def _rule_prefix(rule: ReplicationRuleOutputTypeDef) -> str:
    """The key prefix a rule covers ("" for the whole bucket), in either schema version."""
    found = rule.get("Filter")
    if found is not None:
        if "Prefix" in found:
            return found["Prefix"]
        return found.get("And", {}).get("Prefix", "")
    return rule.get("Prefix", "")


def _comparable(etag: str, other: str) -> bool:
    # A multipart upload's ETag ("...-12") depends on its part sizes, not only its bytes.
    return bool(etag) and bool(other) and "-" not in etag and "-" not in other


def _matches(found: _Object, copy: _Copy | None, compare_etag: bool) -> bool:
    if copy is None or copy.size != found.size:
        return False
    if compare_etag and _comparable(found.etag, copy.etag):
        return found.etag == copy.etag
    return True
