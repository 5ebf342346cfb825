"""``s3``: the newest backup object under a prefix of an S3 (or S3-compatible) bucket is fresh.

Each run lists the objects under ``prefix`` (all pages, ``page_size`` keys per request) and takes
the newest by ``LastModified`` (or by the timestamp in its key, ``timestamp: name``). Objects
smaller than ``min_size`` (zero-byte uploads, aborted multipart uploads completed empty) are bad:
they are named in ``bad_files`` and the age falls back to the newest good object. ``.sha256``
sidecar objects are never taken for backups.

Large prefixes: when backup keys sort by date (``backups/2026-11-22T03:00:00Z.dump``), set
``keys_sorted_by_date: true``. The first run lists everything once; later runs list only the keys
after the newest key seen (S3 ``StartAfter``), so a run costs one request however many backups
are kept. ``start_after`` skips a fixed range of keys from the first run on.

Credentials come from the usual AWS chain; a missing bucket or refused credentials fail
permanently.
"""

from __future__ import annotations

import asyncio
import fnmatch
import heapq
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, field_validator

from app.checks import base
from app.checks._aws import aws_config, aws_failure
from app.checks._backup import (
    BackupCheck,
    BackupFacts,
    check_regex,
    check_zone,
    name_time_parser,
)
from app.checks.base import CheckFailed, Result, Status
from app.units import ByteSize, Duration, format_size

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_SIDECAR_SUFFIX = ".sha256"
# Earlier objects the size plausibility check compares against (their median).
_SIZE_HISTORY = 3
# Bad objects remembered and reported, newest first.
_BAD_KEPT = 20


@dataclass(frozen=True, order=True)
class _Object:
    taken_at: datetime
    key: str
    size: int = field(compare=False)


@dataclass
class _Scan:
    good: list[_Object]
    bad: list[_Object]
    listed: int
    requests: int


class S3Check(BackupCheck["S3Check.Params"]):
    """Finds the newest object of at least ``min_size`` under ``prefix`` in ``bucket``; fails when
    it is older than ``rpo`` or when newer objects are too small, warns when it shrank by more
    than ``max_shrink`` against the earlier ones.
    """

    class Params(base.Params):
        bucket: str = Field(min_length=3, description="The bucket the backups are uploaded to.")
        prefix: str = Field("", description="Only keys under this prefix, e.g. backups/db/.")
        region: str | None = Field(
            None, description="AWS region of the bucket; default: the AWS configuration's."
        )
        endpoint_url: str | None = Field(
            None,
            description="Endpoint of an S3-compatible store (MinIO, R2, ...) instead of AWS.",
        )
        pattern: str | None = Field(
            None,
            description="Glob on the key after the prefix, e.g. *.dump; default: every key.",
        )
        rpo: Duration = Field(
            86400.0,
            description="Recovery point objective: fail when the newest good object is older.",
        )
        min_size: ByteSize = Field(
            1, description="Objects smaller than this (e.g. 1MB) are bad, like empty ones."
        )
        max_shrink: float = Field(
            0.5,
            ge=0.0,
            le=1.0,
            description=(
                "Warn when the newest object is smaller than the median of the earlier ones by "
                "more than this share (0.5 = half)."
            ),
        )
        timestamp: Literal["last_modified", "name"] = Field(
            "last_modified",
            description="Where an object's time comes from: S3's LastModified, or its key.",
        )
        name_format: str | None = Field(
            None,
            description=(
                "strptime format of the timestamp in keys (with timestamp: name); by default "
                "backup_YYYYmmdd_HHMMSS and ISO-8601 are read."
            ),
        )
        name_regex: str | None = Field(
            None,
            description="Regular expression picking the timestamp out of a key (group ts, or "
            "the first group).",
        )
        name_timezone: str = Field(
            "UTC", description="Time zone of key timestamps that carry no offset."
        )
        start_after: str | None = Field(
            None, description="List only keys after this one (skips a fixed range of old keys)."
        )
        keys_sorted_by_date: bool = Field(
            False,
            description=(
                "Keys sort by date, so later runs list only the keys after the newest one seen "
                "(one request per run however many backups are kept)."
            ),
        )
        page_size: int = Field(
            1000, ge=1, le=1000, description="Keys asked for per list request (at most 1000)."
        )

        _regex = field_validator("name_regex")(check_regex)
        _zone = field_validator("name_timezone")(check_zone)

    default_interval: ClassVar[float] = 300.0
    default_timeout: ClassVar[float] = 60.0
    restorable: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p = self.params
        self._client: S3Client | None = None
        self._name_time = name_time_parser(p.name_format, p.name_regex, p.name_timezone)
        # What incremental listing (keys_sorted_by_date) carries from one run to the next.
        self._known_good: list[_Object] = []
        self._known_bad: list[_Object] = []
        self._last_key: str | None = None

    @property
    def where(self) -> str:
        return f"s3://{self.params.bucket}/{self.params.prefix}"

    async def run(self) -> Result:
        p = self.params
        facts = BackupFacts(rpo_seconds=p.rpo, location=self.where)
        facts.extra["bad_files"] = []
        try:
            scan = await asyncio.to_thread(self._scan)
        except CheckFailed as failure:
            return self.unknown(facts, failure)
        facts.extra["objects_listed"] = scan.listed
        facts.extra["list_requests"] = scan.requests
        good = scan.good[0] if scan.good else None
        newer_bad = [o for o in scan.bad if good is None or o > good]
        facts.extra["bad_files"] = [
            {"path": self._url(o.key), "problem": self._problem(o)} for o in newer_bad
        ]
        if good is None:
            if newer_bad:
                first = newer_bad[0]
                return self.report(
                    facts,
                    Status.FAIL,
                    f"No usable backup under {self.where}: the newest, {first.key}, is "
                    f"{self._problem(first)}. The backup upload is failing.",
                )
            return self.report(
                facts,
                Status.FAIL,
                f"No backup objects under {self.where}; the backup job has never uploaded, or "
                "it writes to another bucket or prefix.",
            )
        facts.last_backup_at = good.taken_at
        facts.size_bytes = good.size
        facts.location = self._url(good.key)
        age = f"{facts.age_text} old (RPO {facts.rpo_text})"
        if newer_bad:
            bad = newer_bad[0]
            stale = "" if facts.within_rpo else ", which is past the RPO"
            return self.report(
                facts,
                Status.FAIL,
                f"Newest backup object {bad.key} is {self._problem(bad)}; the newest usable one "
                f"is {good.key}, {age}{stale}. The last upload failed or was cut short.",
            )
        if not facts.within_rpo:
            return self.report(
                facts,
                Status.FAIL,
                f"Newest backup object {good.key} is {facts.age_text} old, older than the "
                f"{facts.rpo_text} RPO; the backup or upload job may not be running.",
            )
        earlier = scan.good[1 : 1 + _SIZE_HISTORY]
        if earlier:
            typical = statistics.median(o.size for o in earlier)
            facts.extra["typical_size_bytes"] = int(typical)
            if typical > 0 and good.size < typical * (1 - p.max_shrink):
                return self.report(
                    facts,
                    Status.WARN,
                    f"Newest backup object {good.key} is {format_size(good.size)}, "
                    f"{1 - good.size / typical:.0%} smaller than the earlier ones "
                    f"({format_size(typical)}); the dump may be missing data.",
                )
        return self.report(
            facts,
            Status.PASS,
            f"Newest backup object {good.key} is {age}, {format_size(good.size)}.",
        )

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- listing (runs in a worker thread)

    def _scan(self) -> _Scan:
        p = self.params
        try:
            if self._client is None:
                self._client = boto3.session.Session().client(
                    "s3",
                    region_name=p.region,
                    endpoint_url=p.endpoint_url,
                    config=aws_config(self.timeout),
                )
            incremental = p.keys_sorted_by_date and self._last_key is not None
            scan = self._list(self._client, incremental)
            if incremental and scan.listed == 0 and self._known_good:
                # Nothing newer: make sure the newest known backup was not deleted meanwhile.
                newest = self._known_good[0]
                scan.requests += 1
                if not self._exists(self._client, newest.key):
                    self._known_good, self._known_bad, self._last_key = [], [], None
                    scan = self._list(self._client, incremental=False)
            return scan
        except (ClientError, BotoCoreError) as exc:
            raise aws_failure(exc, f"S3 bucket {p.bucket}", missing={"NoSuchBucket"}) from None

    def _list(self, client: S3Client, incremental: bool) -> _Scan:
        p = self.params
        starts = [s for s in (p.start_after, self._last_key if incremental else None) if s]
        options: dict[str, Any] = {"Bucket": p.bucket, "Prefix": p.prefix}
        if starts:
            options["StartAfter"] = max(starts)
        good = list(self._known_good) if incremental else []
        bad = list(self._known_bad) if incremental else []
        listed = requests = 0
        last_key = self._last_key if incremental else None
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(**options, PaginationConfig={"PageSize": p.page_size}):
            requests += 1
            for entry in page.get("Contents", []):
                key = entry["Key"]
                listed += 1
                last_key = key if last_key is None or key > last_key else last_key
                if not self._is_backup(key):
                    continue
                taken_at = self._taken_at(key, entry["LastModified"])
                found = _Object(taken_at, key, int(entry.get("Size", 0)))
                if found.size < max(p.min_size, 1):
                    bad.append(found)
                else:
                    good.append(found)
            # Only the newest few are ever needed; keep memory flat on huge prefixes.
            good = heapq.nlargest(_SIZE_HISTORY + 1, good)
            bad = heapq.nlargest(_BAD_KEPT, bad)
        if p.keys_sorted_by_date:
            self._known_good, self._known_bad, self._last_key = good, bad, last_key
        return _Scan(good, bad, listed, requests)

    def _exists(self, client: S3Client, key: str) -> bool:
        try:
            client.head_object(Bucket=self.params.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    def _is_backup(self, key: str) -> bool:
        if key.endswith("/") or key.endswith(_SIDECAR_SUFFIX):
            return False
        pattern = self.params.pattern
        return pattern is None or fnmatch.fnmatchcase(key[len(self.params.prefix) :], pattern)

    def _taken_at(self, key: str, last_modified: datetime) -> datetime:
        if self.params.timestamp == "name":
            from_name = self._name_time(key.rsplit("/", 1)[-1])
            if from_name is not None:
                return from_name
        if last_modified.tzinfo is None:
            last_modified = last_modified.replace(tzinfo=UTC)
        return last_modified.astimezone(UTC)

    def _problem(self, found: _Object) -> str:
        if found.size == 0:
            return "empty (0 bytes)"
        return f"only {format_size(found.size)}, below min_size {format_size(self.params.min_size)}"

    def _url(self, key: str) -> str:
        return f"s3://{self.params.bucket}/{key}"
