"""A restore drill of an RDS instance: restore its newest snapshot (or its latest restorable
time) into a temporary instance, check the data, time it, delete the instance.

:func:`run_rds_drill` is what :func:`app.drills.run.run_drill` runs for a drill with ``rds:``.
Its steps, all within the drill's ``timeout``:

1. delete this drill's leftover instances from runs that crashed;
2. refuse to start while ``max_instances`` drill instances (of any drill) exist already;
3. read the master password (Secrets Manager or a file) and register it as a secret;
4. find the newest available snapshot of ``db_instance_identifier`` in ``region`` (automated,
   manual or any), or its ``LatestRestorableTime`` with ``point_in_time: latest``;
5. restore it into ``drwatch-drill-<name>-<YYYYmmddHHMMSS>``, tagged ``drwatch:drill=<name>``
   (``db.t3.micro`` by default, single-AZ, not publicly accessible), and wait until it is
   ``available`` (``restore_seconds``: from the API call to available);
6. run the integrity queries read-only as the master user, through ``connect_host`` when set;
7. delete the instance with ``SkipFinalSnapshot`` and wait until it is gone, also after a
   failure, a timeout or a cancellation.

Safety: drwatch deletes only instances whose identifier is ``drwatch-drill-<this drill>-`` and a
timestamp AND that carry the tag ``drwatch:drill=<this drill>``; an instance that has one but
not the other is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from app import redact
from app.checks._aws import aws_client, aws_failure, error_code
from app.drills.integrity import Integrity
from app.drills.report import DrillReport, conclude, say
from app.drills.spec import DrillSpec, RdsRestore
from app.errors import DrillFailed
from app.units import format_duration

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_rds.type_defs import DBInstanceTypeDef

    from app.drills.backup import BackupRef

log = logging.getLogger("drwatch.drills")

INSTANCE_PREFIX = "drwatch-drill-"
DRILL_TAG = "drwatch:drill"
RUN_TAG = "drwatch:run"
# RDS identifiers: at most 63 letters, digits and hyphens; prefix (14) + "-" + timestamp (14).
_MAX_NAME_PART = 63 - len(INSTANCE_PREFIX) - 1 - 14
# How long a just-available instance may refuse connections before the drill gives up on it.
_CONNECT_RETRY = 5.0
# Drills starting in this process, per event loop: counting instances and restoring one is a
# critical section, or two drills starting together would both find room under the cap.
_starting: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def instance_name(drill: str, when: datetime) -> str:
    """``drwatch-drill-<sanitized drill name>-<YYYYmmddHHMMSS>``: a valid RDS identifier."""
    part = re.sub(r"[^a-z0-9]+", "-", drill.lower()).strip("-")[:_MAX_NAME_PART].strip("-")
    return f"{INSTANCE_PREFIX}{part or 'drill'}-{when.astimezone(UTC):%Y%m%d%H%M%S}"


def _is_leftover_name(drill: str, identifier: str) -> bool:
    prefix = instance_name(drill, datetime(2000, 1, 1, tzinfo=UTC))[:-14]
    return re.fullmatch(re.escape(prefix) + r"\d{14}", identifier) is not None


def _tags(client: RDSClient, instance: DBInstanceTypeDef) -> dict[str, str]:
    tags = instance.get("TagList")
    if tags is None:
        tags = client.list_tags_for_resource(ResourceName=instance["DBInstanceArn"])["TagList"]
    return {t.get("Key", ""): t.get("Value", "") for t in tags}


class _RdsRun:
    """State of one RDS drill run, so clean-up knows what exists."""

    def __init__(
        self,
        spec: DrillSpec,
        restore: RdsRestore,
        report: DrillReport,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.spec = spec
        self.restore = restore
        self.report = report
        self.progress = progress
        self.client: RDSClient = aws_client("rds", restore.region, restore.endpoint_url, 60.0)
        self.created = False
        self.guard: Any = None
        self.step = "starting"
        self.deadline: asyncio.Timeout | None = None

    @property
    def instance(self) -> str:
        return self.report.database

    def say(self, line: str) -> None:
        say(self.progress, line)

    async def aws(self, what: str, call: Callable[[], Any]) -> Any:
        """One boto3 call in a worker thread, its errors as a sentence."""
        try:
            return await asyncio.to_thread(call)
        except (ClientError, BotoCoreError) as exc:
            raise DrillFailed(aws_failure(exc, what).message) from None

    async def execute(self, backup: BackupRef) -> None:
        restore = self.restore
        self.step = "removing leftovers"
        await self.aws("the drill's leftover instances", self.remove_leftovers)

        self.step = "reading the password"
        password = await self.password()
        redact.register([password])

        async with _starting.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
            self.step = "counting drill instances"
            existing = await self.aws("RDS instances", self.drill_instances)
            if len(existing) >= restore.max_instances:
                raise DrillFailed(
                    f"{len(existing)} drill instance(s) exist already ({', '.join(existing)}); "
                    f"at most {restore.max_instances} may run at once (max_instances). Another "
                    "drill is running, or its instance is still being deleted."
                )
            self.step = "finding the restore point"
            source = await self.aws(
                f"RDS instance {restore.db_instance_identifier}", self.restore_point
            )
            self.step = "restoring"
            self.say(f"restoring {self.report.backup_location} into {self.instance}")
            started = time.perf_counter()
            await self.aws(f"the restore into {self.instance}", lambda: self.start_restore(source))
            self.created = True

        self.step = "waiting for the instance"
        endpoint = await self.wait_available()
        self.report.restore_seconds = time.perf_counter() - started
        self.say(
            f"{self.instance} is available after {format_duration(self.report.restore_seconds)}"
        )

        self.step = "connecting"
        username = restore.username or source.get("MasterUsername") or "postgres"
        self.guard = await self.connect(endpoint, username, password)

        self.step = "checking"
        self.say(f"checking integrity ({len(self.spec.integrity)} queries)")
        backup_time = self.report.backup_time or backup.backup_time
        await Integrity(self.spec, self.report, self.guard, backup_time, backup.rpo_seconds).run()

    # -- AWS calls (in worker threads)

    def remove_leftovers(self) -> list[str]:
        """Delete instances of this drill left by runs that crashed: its name AND its tag."""
        removed = []
        for page in self.client.get_paginator("describe_db_instances").paginate():
            for instance in page.get("DBInstances", []):
                identifier = instance["DBInstanceIdentifier"]
                if not _is_leftover_name(self.spec.name, identifier):
                    continue
                if instance.get("DBInstanceStatus") == "deleting":
                    continue
                if _tags(self.client, instance).get(DRILL_TAG) != self.spec.name:
                    log.warning(
                        "an instance with the drill's name but without its tag was left alone",
                        extra={"instance": identifier},
                    )
                    continue
                try:
                    self.client.delete_db_instance(
                        DBInstanceIdentifier=identifier,
                        SkipFinalSnapshot=True,
                        DeleteAutomatedBackups=True,
                    )
                except ClientError as exc:
                    # Still being created, say: the next run tries again.
                    say(self.progress, f"kept leftover instance {identifier}: {error_code(exc)}")
                    continue
                say(self.progress, f"removing leftover instance {identifier}")
                removed.append(identifier)
        return removed

    def drill_instances(self) -> list[str]:
        """Drill instances (any drill's) that exist and are not on their way out."""
        found = []
        for page in self.client.get_paginator("describe_db_instances").paginate():
            for instance in page.get("DBInstances", []):
                identifier = instance["DBInstanceIdentifier"]
                if not identifier.startswith(INSTANCE_PREFIX):
                    continue
                if instance.get("DBInstanceStatus") == "deleting":
                    continue
                if DRILL_TAG in _tags(self.client, instance):
                    found.append(identifier)
        return found

    def restore_point(self) -> dict[str, Any]:
        """The snapshot to restore (or the source instance for a point-in-time restore); fills
        the report's backup location and time."""
        restore = self.restore
        assert restore.db_instance_identifier is not None
        if restore.point_in_time == "latest":
            instances = self.client.describe_db_instances(
                DBInstanceIdentifier=restore.db_instance_identifier
            )["DBInstances"]
            restorable = instances[0].get("LatestRestorableTime") if instances else None
            if restorable is None:
                raise DrillFailed(
                    f"{restore.db_instance_identifier} has no latest restorable time; automated "
                    "backups are off or point-in-time recovery is not available yet."
                )
            at = _aware(restorable)
            self.report.backup_location = (
                f"{instances[0].get('DBInstanceArn')} at {at.isoformat()} (point in time)"
            )
            self.report.backup_time = at
            self.report.backup_format = "rds point-in-time"
            return dict(instances[0])
        options: dict[str, Any] = {"DBInstanceIdentifier": restore.db_instance_identifier}
        if restore.snapshot != "any":
            options["SnapshotType"] = restore.snapshot
        available = [
            snapshot
            for page in self.client.get_paginator("describe_db_snapshots").paginate(**options)
            for snapshot in page.get("DBSnapshots", [])
            if snapshot.get("Status") == "available" and snapshot.get("SnapshotCreateTime")
        ]
        if not available:
            kind = "" if restore.snapshot == "any" else f"{restore.snapshot} "
            raise DrillFailed(
                f"{restore.db_instance_identifier} has no available {kind}snapshot in "
                f"{restore.region or 'its region'}; nothing to restore."
            )
        newest = max(available, key=lambda s: _aware(s["SnapshotCreateTime"]))
        self.report.backup_location = newest.get("DBSnapshotArn", newest["DBSnapshotIdentifier"])
        self.report.backup_time = _aware(newest["SnapshotCreateTime"])
        self.report.backup_format = f"rds snapshot ({newest.get('SnapshotType', 'unknown')})"
        return dict(newest)

    def start_restore(self, source: dict[str, Any]) -> None:
        restore = self.restore
        options: dict[str, Any] = {
            "DBInstanceClass": restore.instance_class,
            "MultiAZ": False,
            "PubliclyAccessible": False,
            "AutoMinorVersionUpgrade": False,
            "DeletionProtection": False,
            "CopyTagsToSnapshot": False,
            "Tags": [
                {"Key": DRILL_TAG, "Value": self.spec.name},
                {"Key": RUN_TAG, "Value": self.report.run_id},
            ],
        }
        if restore.subnet_group:
            options["DBSubnetGroupName"] = restore.subnet_group
        if restore.security_groups:
            options["VpcSecurityGroupIds"] = list(restore.security_groups)
        if restore.parameter_group:
            options["DBParameterGroupName"] = restore.parameter_group
        if restore.point_in_time == "latest":
            self.client.restore_db_instance_to_point_in_time(
                SourceDBInstanceIdentifier=source["DBInstanceIdentifier"],
                TargetDBInstanceIdentifier=self.instance,
                UseLatestRestorableTime=True,
                **options,
            )
        else:
            self.client.restore_db_instance_from_db_snapshot(
                DBInstanceIdentifier=self.instance,
                DBSnapshotIdentifier=source["DBSnapshotIdentifier"],
                **options,
            )

    async def wait_available(self) -> tuple[str, int]:
        """Wait (boto3's waiter, polling every ``poll_interval``) until the instance is
        available, never past the drill's deadline; its endpoint."""
        delay = max(1, round(self.restore.poll_interval))
        attempts = max(1, math.ceil(self.remaining() / delay))

        def wait() -> DBInstanceTypeDef:
            self.client.get_waiter("db_instance_available").wait(
                DBInstanceIdentifier=self.instance,
                WaiterConfig={"Delay": delay, "MaxAttempts": attempts},
            )
            return self.client.describe_db_instances(DBInstanceIdentifier=self.instance)[
                "DBInstances"
            ][0]

        try:
            instance = await asyncio.to_thread(wait)
        except WaiterError as exc:
            last: dict[str, Any] = dict(exc.last_response or {})
            described: list[dict[str, Any]] = list(last.get("DBInstances", []))
            status = described[0].get("DBInstanceStatus") if described else None
            if "Max attempts exceeded" in str(exc):
                raise TimeoutError from None
            raise DrillFailed(
                f"The restored instance {self.instance} became {status or 'unusable'} instead of "
                "available; the snapshot, the instance class or the parameter group do not fit."
            ) from None
        except (ClientError, BotoCoreError) as exc:
            raise DrillFailed(aws_failure(exc, f"instance {self.instance}").message) from None
        endpoint = instance.get("Endpoint", {})
        return str(endpoint.get("Address", "")), int(endpoint.get("Port", 5432))

    def remaining(self) -> float:
        when = self.deadline.when() if self.deadline is not None else None
        if when is None:
            return self.spec.timeout
        return max(1.0, when - asyncio.get_running_loop().time())

    async def password(self) -> str:
        restore = self.restore
        if restore.password_file is not None:
            try:
                text = await asyncio.to_thread(restore.password_file.read_text)
            except OSError as exc:
                raise DrillFailed(
                    f"Cannot read password_file {restore.password_file}: {exc.strerror}."
                ) from None
            return text.strip()
        arn = restore.password_secret_arn
        assert arn is not None
        parts = arn.split(":")
        region = parts[3] if len(parts) > 3 and parts[3] else restore.region

        def fetch() -> str:
            client = aws_client("secretsmanager", region, restore.secrets_endpoint_url, 30.0)
            try:
                return str(client.get_secret_value(SecretId=arn).get("SecretString", ""))
            finally:
                client.close()

        secret = await self.aws(f"the secret {arn}", fetch)
        with contextlib.suppress(ValueError):
            document = json.loads(secret)
            if isinstance(document, dict) and "password" in document:
                return str(document["password"])
        return str(secret)

    async def connect(self, endpoint: tuple[str, int], username: str, password: str) -> Any:
        host = self.restore.connect_host or endpoint[0]
        port = self.restore.connect_port or endpoint[1]
        where = f"{host}:{port}/{self.restore.database}"
        self.say(f"connecting to {where} as {username}")
        while True:
            try:
                return await asyncpg.connect(
                    host=host,
                    port=port,
                    user=username,
                    password=password,
                    database=self.restore.database,
                    timeout=15,
                    # Read-only for the session too: a drill never writes to what it checks.
                    server_settings={
                        "default_transaction_read_only": "on",
                        "application_name": "drwatch-drill",
                    },
                )
            except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
                raise DrillFailed(
                    f"The restored instance refused {username}'s password at {where}; the "
                    "secret does not hold the master password of the snapshot's instance."
                ) from None
            except asyncpg.InvalidCatalogNameError:
                raise DrillFailed(
                    f"The restored instance has no database {self.restore.database!r}; set "
                    "rds.database to the application's database."
                ) from None
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                # A just-available instance may take a moment to accept connections; the
                # drill's deadline ends the retries.
                self.say(f"cannot connect to {where} yet: {redact.scrub(str(exc))[:200]}")
                await asyncio.sleep(_CONNECT_RETRY)

    async def delete(self) -> None:
        """Delete the run's instance and wait until it is gone (within ``delete_timeout``)."""
        if self.guard is not None:
            with contextlib.suppress(Exception):
                await self.guard.close(timeout=5)
            self.guard = None
        if not self.created:
            return
        delay = max(1, round(self.restore.poll_interval))
        started = time.monotonic()

        def delete_and_wait() -> None:
            while True:
                try:
                    self.client.delete_db_instance(
                        DBInstanceIdentifier=self.instance,
                        SkipFinalSnapshot=True,
                        DeleteAutomatedBackups=True,
                    )
                    break
                except ClientError as exc:
                    if error_code(exc) == "DBInstanceNotFound":
                        return
                    # RDS refuses to delete an instance while it is still being created.
                    if error_code(exc) != "InvalidDBInstanceState":
                        raise
                    if time.monotonic() - started > self.restore.delete_timeout:
                        raise
                    time.sleep(delay)
            left = self.restore.delete_timeout - (time.monotonic() - started)
            self.client.get_waiter("db_instance_deleted").wait(
                DBInstanceIdentifier=self.instance,
                WaiterConfig={"Delay": delay, "MaxAttempts": max(1, math.ceil(left / delay))},
            )

        self.say(f"deleting {self.instance}")
        await asyncio.to_thread(delete_and_wait)
        self.created = False
        self.report.database_dropped = True


async def run_rds_drill(
    spec: DrillSpec,
    backup: BackupRef,
    *,
    progress: Callable[[str], None] | None = None,
    run_id: str | None = None,
) -> DrillReport:
    """Restore the newest snapshot of the drill's instance into a temporary one, check it, time
    it, delete it. Returns the report; never raises for a failed drill. Cancelling the caller
    deletes the instance and re-raises CancelledError.
    """
    assert spec.rds is not None
    redact.register(spec.secrets())
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    report = DrillReport(
        run_id=run_id or uuid.uuid4().hex,
        drill=spec.name,
        database=instance_name(spec.name, started_at),
        started_at=started_at,
        backup_location=backup.location,
        backup_time=backup.backup_time,
        rto_seconds=spec.rto,
    )
    run = _RdsRun(spec, spec.rds, report, progress)
    failure: str | None = None
    cleanup_error: str | None = None
    try:
        run.deadline = asyncio.timeout(spec.timeout)
        try:
            async with run.deadline:
                await run.execute(backup)
        except TimeoutError:
            failure = (
                f"The drill did not finish within its {format_duration(spec.timeout)} timeout "
                f"(it was {run.step}); it was cancelled. RDS is slower than planned, or the "
                "instance never became available."
            )
        except DrillFailed as exc:
            failure = exc.message
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            failure = (
                f"The drill failed while {run.step}: {type(exc).__name__}: "
                f"{redact.scrub(str(exc))[:300]}."
            )
    finally:
        run.say("cleaning up")
        try:
            await asyncio.shield(run.delete())
        except (ClientError, BotoCoreError, WaiterError, OSError) as exc:
            cleanup_error = redact.scrub(str(exc))[:300] or type(exc).__name__
            log.warning(
                "could not delete the drill instance",
                extra={"instance": report.database, "error": cleanup_error},
            )
        run.client.close()
    conclude(
        report,
        spec.rto,
        report.backup_time or backup.backup_time,
        failure,
        cleanup_error,
        started,
        cleanup_failure=(
            f"The drill instance {report.database} could not be deleted ({cleanup_error}); the "
            "next run deletes it."
        ),
    )
    log.info(
        "restore drill finished",
        extra={"drill": spec.name, "status": report.status, "run_id": report.run_id},
    )
    return report


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
