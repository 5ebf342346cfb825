"""``rds_replica``: the cross-region read replica a failover would promote is there, replicates
from the expected primary, and is close enough behind it.

Each run reads the replica (``DescribeDBInstances`` in the standby region) and its ``ReplicaLag``
metric (CloudWatch ``GetMetricData``, namespace ``AWS/RDS``, the newest one-minute maximum within
``lag_window``). It fails when the replica is not ``available``, is no longer a replica (it was
promoted), replicates from another instance, reports a replication error, publishes no lag, or
lags more than ``max_lag`` (default: the ``rpo``). The lag is what a failover right now would
lose, which ``/api/dr-readiness`` reports as the expected data loss (only while the replica could
be promoted: available, replicating, from the expected primary).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from app.checks import base
from app.checks._aws import aws_client, aws_failure
from app.checks.base import Check, CheckFailed, Criticality, Result
from app.units import Duration, format_duration

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_rds.type_defs import DBInstanceTypeDef

# RDS reports -1 for ReplicaLag while replication is not running (PostgreSQL, MySQL).
_NOT_REPLICATING = -1.0


@dataclass
class _Found:
    instance: DBInstanceTypeDef
    lag_seconds: float | None
    lag_at: datetime | None


class RdsReplicaCheck(Check["RdsReplicaCheck.Params"]):
    """Fails when the DR read replica is unavailable, detached, replicating from elsewhere, or
    further behind than ``max_lag``.
    """

    class Params(base.Params):
        db_instance_identifier: str = Field(
            min_length=1, description="The read replica in the standby region."
        )
        region: str | None = Field(
            None, description="The standby region the replica is in, e.g. us-west-2."
        )
        source_db_instance: str | None = Field(
            None,
            description=(
                "The primary it must replicate from: its identifier or ARN; default: any."
            ),
        )
        rpo: Duration = Field(
            900.0, description="Recovery point objective the replica serves (default 15m)."
        )
        max_lag: Duration | None = Field(
            None, description="Fail when ReplicaLag is higher than this; default: the rpo."
        )
        lag_window: Duration = Field(
            600.0,
            description="How far back to look for the newest ReplicaLag datapoint; none: fail.",
        )
        endpoint_url: str | None = Field(
            None, description="RDS API endpoint to use instead of AWS's (a test server)."
        )
        cloudwatch_endpoint_url: str | None = Field(
            None, description="CloudWatch API endpoint to use instead of AWS's (a test server)."
        )

    default_criticality: ClassVar[Criticality] = "info"
    default_interval: ClassVar[float] = 60.0
    default_timeout: ClassVar[float] = 30.0
    gauges: ClassVar[dict[str, str]] = {"replica_lag_seconds": "drwatch_replication_lag_seconds"}
    failover_data_loss_key: ClassVar[str | None] = "replica_lag_seconds"
    failover_data_loss_rank: ClassVar[int] = 10
    failover_data_loss_basis: ClassVar[str] = "ReplicaLag of the cross-region read replica"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rds: RDSClient | None = None
        self._cloudwatch: CloudWatchClient | None = None

    @classmethod
    def replication_lag_threshold(cls, params: RdsReplicaCheck.Params) -> float | None:
        return params.max_lag if params.max_lag is not None else params.rpo

    @property
    def max_lag(self) -> float:
        return self.params.max_lag if self.params.max_lag is not None else self.params.rpo

    async def run(self) -> Result:
        p = self.params
        found = await asyncio.to_thread(self._read)
        instance = found.instance
        status = instance.get("DBInstanceStatus", "unknown")
        source = instance.get("ReadReplicaSourceDBInstanceIdentifier")
        replication = next(
            (
                info
                for info in instance.get("StatusInfos", [])
                if info.get("StatusType") == "read replication"
            ),
            None,
        )
        lag = found.lag_seconds
        # The lag is what a failover to this replica would lose, so it is reported only for a
        # replica that could be promoted; /api/dr-readiness then falls back to the backups.
        promotable = (
            source is not None
            and (not p.source_db_instance or _same_instance(source, p.source_db_instance))
            and status == "available"
            and (replication is None or replication.get("Status") == "replicating")
        )
        details: dict[str, Any] = {
            "replica": p.db_instance_identifier,
            "region": p.region,
            "replica_status": status,
            "source": source,
            "replication_state": replication.get("Status") if replication else None,
            "replica_lag_seconds": lag if promotable and lag is not None and lag >= 0 else None,
            "lag_measured_at": found.lag_at.isoformat() if found.lag_at else None,
            "max_lag_seconds": self.max_lag,
            "rpo_seconds": p.rpo,
            "location": instance.get("DBInstanceArn"),
        }
        name = f"The DR replica {p.db_instance_identifier}"
        if source is None:
            return self.failed(
                f"{name} is not a read replica any more (it was promoted, or is a standalone "
                "instance); there is no standby to fail over to until a new replica is made.",
                details=details,
            )
        if p.source_db_instance and not _same_instance(source, p.source_db_instance):
            return self.failed(
                f"{name} replicates from {source}, not from {p.source_db_instance}; a failover "
                "would promote a copy of the wrong database.",
                details=details,
                permanent=True,
            )
        if status != "available":
            return self.failed(
                f"{name} is {status}, not available; it cannot be promoted until it is.",
                details=details,
            )
        if replication is not None and replication.get("Status") != "replicating":
            message = replication.get("Message") or "no message"
            return self.failed(
                f"{name}'s replication is {replication.get('Status')} ({message}); it stopped "
                "receiving changes from the primary.",
                details=details,
            )
        if lag is None:
            return self.failed(
                f"{name} published no ReplicaLag in the last {format_duration(p.lag_window)}; "
                "replication may have stopped, or CloudWatch is not receiving the metric.",
                details=details,
            )
        if lag == _NOT_REPLICATING or lag < 0:
            return self.failed(
                f"{name} reports a ReplicaLag of {lag:g}: replication is not running.",
                details=details,
            )
        behind = format_duration(lag)
        allowed = format_duration(self.max_lag)
        objective = f"RPO {format_duration(p.rpo)}"
        if self.max_lag != p.rpo:
            objective = f"max_lag {allowed}, {objective}"
        if lag > self.max_lag:
            return self.failed(
                f"{name} is {behind} behind: failing over now loses up to {behind} of data, "
                f"{objective}.",
                observed_value=lag,
                observed_unit="s",
                details=details,
            )
        return self.passed(
            f"{name} is available and {behind} behind its primary ({objective}).",
            observed_value=lag,
            observed_unit="s",
            details=details,
        )

    async def close(self) -> None:
        for client in (self._rds, self._cloudwatch):
            if client is not None:
                client.close()
        self._rds = self._cloudwatch = None

    # -- AWS calls (in a worker thread)

    def _read(self) -> _Found:
        p = self.params
        what = f"RDS read replica {p.db_instance_identifier}"
        try:
            if self._rds is None:
                self._rds = aws_client("rds", p.region, p.endpoint_url, self.timeout)
            instances = self._rds.describe_db_instances(
                DBInstanceIdentifier=p.db_instance_identifier
            ).get("DBInstances", [])
        except (ClientError, BotoCoreError) as exc:
            raise aws_failure(exc, what, missing={"DBInstanceNotFound"}) from None
        if not instances:
            raise CheckFailed(f"{what} does not exist.", permanent=True)
        try:
            if self._cloudwatch is None:
                self._cloudwatch = aws_client(
                    "cloudwatch", p.region, p.cloudwatch_endpoint_url, self.timeout
                )
            lag, lag_at = self._newest_lag(self._cloudwatch)
        except (ClientError, BotoCoreError) as exc:
            raise aws_failure(exc, f"the ReplicaLag metric of {p.db_instance_identifier}") from None
        return _Found(instances[0], lag, lag_at)

    def _newest_lag(self, client: CloudWatchClient) -> tuple[float | None, datetime | None]:
        end = datetime.now(UTC)
        newest: tuple[float | None, datetime | None] = (None, None)
        pages = client.get_paginator("get_metric_data").paginate(
            MetricDataQueries=[
                {
                    "Id": "lag",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/RDS",
                            "MetricName": "ReplicaLag",
                            "Dimensions": [
                                {
                                    "Name": "DBInstanceIdentifier",
                                    "Value": self.params.db_instance_identifier,
                                }
                            ],
                        },
                        "Period": 60,
                        "Stat": "Maximum",
                    },
                }
            ],
            StartTime=end - timedelta(seconds=self.params.lag_window),
            # A datapoint stamped this very second belongs to the period still open.
            EndTime=end + timedelta(seconds=60),
            ScanBy="TimestampDescending",
        )
        for page in pages:
            for series in page.get("MetricDataResults", []):
                for at, value in zip(
                    series.get("Timestamps", []), series.get("Values", []), strict=False
                ):
                    at = at if at.tzinfo else at.replace(tzinfo=UTC)
                    if newest[1] is None or at > newest[1]:
                        newest = (float(value), at.astimezone(UTC))
        return newest


def _same_instance(reported: str, expected: str) -> bool:
    """Whether a replica's source (an ARN across regions, an identifier within one) is the
    expected instance, given by identifier or ARN.
    """
    if reported.startswith("arn:") and expected.startswith("arn:"):
        return reported == expected
    return reported.rsplit(":db:", 1)[-1] == expected.rsplit(":db:", 1)[-1]
