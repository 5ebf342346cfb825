"""``rds``: an Amazon RDS instance has a recent snapshot, point-in-time recovery keeps up, and
(optionally) its snapshots are copied to a disaster-recovery region.

Each run reads the instance (``DescribeDBInstances``) and its snapshots (``DescribeDBSnapshots``,
automated, and manual too with ``include_manual``):

* the newest snapshot in status ``available`` gives the backup age, held against ``rpo``;
  newer snapshots in a failed state are named in ``bad_files``;
* ``LatestRestorableTime`` gives the point-in-time recovery lag (how much would be lost by
  restoring now), held against ``pitr_rpo``; automated backups turned off (retention 0) fail;
* with ``dr_region``, the newest available snapshot of the instance there (a cross-region copy)
  must be within ``dr_rpo`` (default: ``rpo``).

RDS does not report a snapshot's stored size (``AllocatedStorage`` is the volume), so
``size_bytes`` is None and the volume size is in ``allocated_storage_gib``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from app.checks import base
from app.checks._aws import aws_config, aws_failure
from app.checks._backup import BackupCheck, BackupFacts
from app.checks.base import CheckFailed, RestorableInstance, Result, Status
from app.units import Duration, format_duration, rfc3339

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_rds.type_defs import DBInstanceTypeDef, DBSnapshotTypeDef

# Snapshot states that mean the snapshot is still being made (not bad, not usable yet).
_IN_PROGRESS = {"creating", "copying", "pending"}
_SNAPSHOT_VERIFIED_BY = "available snapshot status"


@dataclass
class _Found:
    instance: DBInstanceTypeDef
    snapshots: list[DBSnapshotTypeDef]
    dr_snapshots: list[DBSnapshotTypeDef] | None


class RdsCheck(BackupCheck["RdsCheck.Params"]):
    """Fails when the newest available snapshot is older than ``rpo``, when point-in-time
    recovery lags more than ``pitr_rpo``, or when the DR region has no recent copy.
    """

    class Params(base.Params):
        db_instance_identifier: str = Field(
            min_length=1, description="The RDS instance whose backups are watched."
        )
        region: str | None = Field(
            None, description="AWS region of the instance; default: the AWS configuration's."
        )
        endpoint_url: str | None = Field(
            None, description="RDS API endpoint to use instead of AWS's (a test server)."
        )
        rpo: Duration = Field(
            86400.0,
            description="Recovery point objective: fail when the newest snapshot is older.",
        )
        include_manual: bool = Field(
            False, description="Count manual snapshots too, not only automated ones."
        )
        pitr: bool = Field(
            True,
            description="Hold the point-in-time recovery lag (LatestRestorableTime) to pitr_rpo.",
        )
        pitr_rpo: Duration = Field(
            900.0, description="Fail when point-in-time recovery lags further behind than this."
        )
        dr_region: str | None = Field(
            None,
            description="Disaster-recovery region that must hold a recent copy of the snapshots.",
        )
        dr_endpoint_url: str | None = Field(
            None, description="RDS API endpoint for the DR region (a test server)."
        )
        dr_rpo: Duration | None = Field(
            None, description="How old the newest copy in dr_region may be; default: rpo."
        )

    default_interval: ClassVar[float] = 900.0
    default_timeout: ClassVar[float] = 60.0
    # A drill restores its newest snapshot (or latest restorable time) into a temporary
    # instance: app/drills/rds.py.
    restorable: ClassVar[bool] = True
    restore_kind: ClassVar[Literal["dump", "instance"]] = "instance"

    @classmethod
    def restorable_instance(cls, params: RdsCheck.Params) -> RestorableInstance:
        return RestorableInstance(params.db_instance_identifier, params.region, params.endpoint_url)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: RDSClient | None = None
        self._dr_client: RDSClient | None = None

    async def run(self) -> Result:
        p = self.params
        facts = BackupFacts(rpo_seconds=p.rpo, location=f"rds instance {p.db_instance_identifier}")
        facts.extra.update(bad_files=[], in_progress=[])
        try:
            found = await asyncio.to_thread(self._describe)
        except CheckFailed as failure:
            return self.unknown(facts, failure)
        instance = found.instance
        facts.location = instance.get("DBInstanceArn") or facts.location
        retention = instance.get("BackupRetentionPeriod", 0)
        facts.extra["backup_retention_days"] = retention
        facts.extra["allocated_storage_gib"] = instance.get("AllocatedStorage")

        problems: list[str] = []
        notes: list[str] = []
        if retention == 0:
            problems.append(
                f"Automated backups are turned off for {p.db_instance_identifier} (retention 0 "
                "days); there are no new snapshots and no point-in-time recovery."
            )

        newest, bad, in_progress = _newest_available(found.snapshots)
        facts.extra["bad_files"] = [
            {"path": s.get("DBSnapshotArn", s["DBSnapshotIdentifier"]), "problem": s["Status"]}
            for s in bad
        ]
        facts.extra["in_progress"] = [s["DBSnapshotIdentifier"] for s in in_progress]
        if newest is None:
            problems.append(
                f"{p.db_instance_identifier} has no available snapshot; nothing to restore from "
                "but point-in-time recovery."
            )
        else:
            facts.last_backup_at = _aware(newest["SnapshotCreateTime"])
            facts.location = newest.get("DBSnapshotArn", newest["DBSnapshotIdentifier"])
            facts.verified = True
            facts.verified_by = _SNAPSHOT_VERIFIED_BY
            facts.extra["snapshot_type"] = newest.get("SnapshotType")
            name = newest["DBSnapshotIdentifier"]
            if not facts.within_rpo:
                problems.append(
                    f"Newest snapshot {name} is {facts.age_text} old, older than the "
                    f"{facts.rpo_text} RPO; automated backups may be failing."
                )
            else:
                notes.append(
                    f"newest snapshot {name} is {facts.age_text} old (RPO {facts.rpo_text})"
                )
        if bad:
            facts.verified = False
            problems.append(
                f"Snapshot {bad[0]['DBSnapshotIdentifier']} is {bad[0]['Status']}, newer than "
                "the newest available one."
            )

        if p.pitr:
            self._judge_pitr(instance, facts, problems, notes)
        if found.dr_snapshots is not None:
            self._judge_dr(found.dr_snapshots, facts, problems, notes)

        if problems:
            return self.report(facts, Status.FAIL, " ".join(problems))
        summary = "; ".join(notes)
        return self.report(facts, Status.PASS, f"{p.db_instance_identifier}: {summary}.")

    def _judge_pitr(
        self,
        instance: DBInstanceTypeDef,
        facts: BackupFacts,
        problems: list[str],
        notes: list[str],
    ) -> None:
        p = self.params
        facts.extra["pitr_rpo_seconds"] = p.pitr_rpo
        restorable = instance.get("LatestRestorableTime")
        if restorable is None:
            facts.extra.update(latest_restorable_time=None, pitr_lag_seconds=None)
            facts.extra["within_pitr_rpo"] = False
            if instance.get("BackupRetentionPeriod", 0) > 0:
                problems.append(
                    f"RDS reports no latest restorable time for {p.db_instance_identifier}; "
                    "point-in-time recovery is not available yet or has stopped."
                )
            return
        restorable = _aware(restorable)
        lag = max(0.0, (facts.now - restorable).total_seconds())
        within = lag <= p.pitr_rpo
        facts.extra.update(
            latest_restorable_time=rfc3339(restorable),
            pitr_lag_seconds=lag,
            within_pitr_rpo=within,
        )
        if not within:
            problems.append(
                f"Point-in-time recovery is {format_duration(lag)} behind (latest restorable "
                f"time {rfc3339(restorable)}), more than the {format_duration(p.pitr_rpo)} PITR "
                "RPO; transaction logs are not reaching the backup storage."
            )
        else:
            notes.append(f"point-in-time recovery is {format_duration(lag)} behind")

    def _judge_dr(
        self,
        snapshots: list[DBSnapshotTypeDef],
        facts: BackupFacts,
        problems: list[str],
        notes: list[str],
    ) -> None:
        p = self.params
        dr_rpo = p.dr_rpo if p.dr_rpo is not None else p.rpo
        newest, _, _ = _newest_available(snapshots)
        facts.extra.update(dr_region=p.dr_region, dr_rpo_seconds=dr_rpo)
        if newest is None:
            facts.extra.update(
                dr_last_backup_at=None, dr_age_seconds=None, dr_within_rpo=False, dr_location=None
            )
            problems.append(
                f"No available copy of {p.db_instance_identifier}'s snapshots in {p.dr_region}; "
                "the cross-region copy is not set up or is failing."
            )
            return
        taken_at = _aware(newest["SnapshotCreateTime"])
        age = max(0.0, (facts.now - taken_at).total_seconds())
        within = age <= dr_rpo
        facts.extra.update(
            dr_last_backup_at=rfc3339(taken_at),
            dr_age_seconds=age,
            dr_within_rpo=within,
            dr_location=newest.get("DBSnapshotArn", newest["DBSnapshotIdentifier"]),
        )
        if not within:
            problems.append(
                f"The newest snapshot copy in {p.dr_region}, {newest['DBSnapshotIdentifier']}, "
                f"is {format_duration(age)} old, older than {format_duration(dr_rpo)}; the "
                "cross-region copy is failing."
            )
        else:
            notes.append(f"the copy in {p.dr_region} is {format_duration(age)} old")

    async def close(self) -> None:
        for client in (self._client, self._dr_client):
            if client is not None:
                client.close()
        self._client = self._dr_client = None

    # -- AWS calls (in a worker thread)

    def _describe(self) -> _Found:
        p = self.params
        what = f"RDS instance {p.db_instance_identifier}"
        try:
            if self._client is None:
                self._client = _rds_client(p.region, p.endpoint_url, self.timeout)
            answer = self._client.describe_db_instances(
                DBInstanceIdentifier=p.db_instance_identifier
            )
            instances = answer.get("DBInstances", [])
            if not instances:
                raise CheckFailed(f"{what} does not exist.", permanent=True)
            kinds = ["automated", "manual"] if p.include_manual else ["automated"]
            snapshots = [s for kind in kinds for s in self._snapshots(self._client, kind)]
        except (ClientError, BotoCoreError) as exc:
            raise aws_failure(exc, what, missing={"DBInstanceNotFound"}) from None
        dr_snapshots = None
        if p.dr_region:
            try:
                if self._dr_client is None:
                    self._dr_client = _rds_client(p.dr_region, p.dr_endpoint_url, self.timeout)
                # Copies are manual snapshots in the DR region that keep the instance identifier.
                dr_snapshots = self._snapshots(self._dr_client, None)
            except (ClientError, BotoCoreError) as exc:
                raise aws_failure(exc, f"{what}'s snapshots in {p.dr_region}") from None
        return _Found(instances[0], snapshots, dr_snapshots)

    def _snapshots(self, client: RDSClient, kind: str | None) -> list[DBSnapshotTypeDef]:
        options: dict[str, Any] = {"DBInstanceIdentifier": self.params.db_instance_identifier}
        if kind is not None:
            options["SnapshotType"] = kind
        found: list[DBSnapshotTypeDef] = []
        for page in client.get_paginator("describe_db_snapshots").paginate(**options):
            found.extend(page.get("DBSnapshots", []))
        return found


def _rds_client(region: str | None, endpoint_url: str | None, timeout: float) -> RDSClient:
    return boto3.session.Session().client(
        "rds", region_name=region, endpoint_url=endpoint_url, config=aws_config(timeout)
    )


def _newest_available(
    snapshots: list[DBSnapshotTypeDef],
) -> tuple[DBSnapshotTypeDef | None, list[DBSnapshotTypeDef], list[DBSnapshotTypeDef]]:
    """The newest available snapshot, failed ones newer than it, and ones still being made."""
    dated = sorted(
        (s for s in snapshots if s.get("SnapshotCreateTime") is not None),
        key=lambda s: _aware(s["SnapshotCreateTime"]),
        reverse=True,
    )
    bad: list[DBSnapshotTypeDef] = []
    in_progress: list[DBSnapshotTypeDef] = []
    for snapshot in dated:
        status = snapshot.get("Status", "")
        if status == "available":
            return snapshot, bad, in_progress
        (in_progress if status in _IN_PROGRESS else bad).append(snapshot)
    return None, bad, in_progress


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
