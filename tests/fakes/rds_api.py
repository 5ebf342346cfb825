"""AWS on loopback: ``moto_server`` for S3 and RDS, and a small RDS Query API server.

moto answers ``DescribeDBInstances`` with ``LatestRestorableTime`` = now and stamps snapshots with
the time they were made, so it cannot show a point-in-time-recovery lag or an old snapshot.
:class:`FakeRds` speaks the RDS Query protocol (form-encoded POST, XML answers, the documented
error body) for ``DescribeDBInstances`` and ``DescribeDBSnapshots`` with whatever times a test
sets. For restore drills it also restores (``RestoreDBInstanceFromDBSnapshot``), lists tags and
deletes (``DeleteDBInstance``); a restored instance stays in ``restored_status`` (default
``creating``), which moto cannot show: moto's restores are available at once.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

from tests.credentials import fake_aws_credentials
from tests.fakes.base import FakeApi, Reply, Request
from tests.servers import free_port, wait_for_port

_NS = "http://rds.amazonaws.com/doc/2014-10-31/"
_REQUEST_ID = "5c2b8d4e-0f1a-4b3c-9d8e-7f6a5b4c3d2e"
ACCOUNT = "123456789012"

# Credentials moto accepts; tests put them in the environment, as the AWS chain reads them.
AWS_ENV = {
    **fake_aws_credentials(),
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class MotoServer:
    """``moto_server`` (moto's standalone AWS fake) on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        self.port = free_port()
        binary = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Snapshot:
    identifier: str
    created_at: datetime
    kind: str = "automated"  # automated | manual
    status: str = "available"
    allocated_storage: int = 20


@dataclass
class Instance:
    identifier: str
    latest_restorable_time: datetime | None
    backup_retention_period: int = 7
    status: str = "available"
    region: str = "us-east-1"
    snapshots: list[Snapshot] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:aws:rds:{self.region}:{ACCOUNT}:db:{self.identifier}"


class FakeRds(FakeApi):
    """The RDS Query API (Version 2014-10-31) for DescribeDBInstances and DescribeDBSnapshots."""

    vendor = "rds"

    def __init__(self) -> None:
        super().__init__()
        self.instances: dict[str, Instance] = {}
        self.restored_status = "creating"
        self.deleted: list[str] = []

    def add(self, instance: Instance) -> Instance:
        self.instances[instance.identifier] = instance
        return instance

    def error(self, status: int, message: str, code: str = "InternalFailure") -> Reply:
        body = (
            f'<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{_REQUEST_ID}</RequestId></ErrorResponse>"
        )
        return Reply(status, raw=body.encode(), content_type="text/xml")

    def handle(self, request: Request) -> Reply:
        if request.method != "POST":
            return self.error(400, "Only POST is supported", "InvalidAction")
        if "AWS4-HMAC-SHA256" not in request.headers.get("authorization", ""):
            return self.error(
                403, "Request is missing Authentication Token", "MissingAuthenticationToken"
            )
        form = request.form
        action = form.get("Action")
        if action == "DescribeDBInstances":
            return self._describe_instances(form)
        if action == "DescribeDBSnapshots":
            return self._describe_snapshots(form)
        if action == "RestoreDBInstanceFromDBSnapshot":
            return self._restore(form)
        if action == "DeleteDBInstance":
            return self._delete(form)
        if action == "ListTagsForResource":
            return self._list_tags(form)
        return self.error(400, f"Could not find operation {action}", "InvalidAction")

    def _instance(self, identifier: str | None) -> Instance | Reply:
        instance = self.instances.get(identifier or "")
        if instance is None:
            return self.error(404, f"DBInstance {identifier} not found.", "DBInstanceNotFound")
        return instance

    def _describe_instances(self, form: dict[str, str]) -> Reply:
        if form.get("DBInstanceIdentifier") is None:
            members = "".join(self._member(i) for i in list(self.instances.values()))
            return self._ok("DescribeDBInstances", f"<DBInstances>{members}</DBInstances>")
        found = self._instance(form.get("DBInstanceIdentifier"))
        if isinstance(found, Reply):
            return found
        return self._ok("DescribeDBInstances", f"<DBInstances>{self._member(found)}</DBInstances>")

    def _member(self, found: Instance) -> str:
        restorable = (
            f"<LatestRestorableTime>{_iso(found.latest_restorable_time)}</LatestRestorableTime>"
            if found.latest_restorable_time
            else ""
        )
        return (
            "<DBInstance>"
            f"<DBInstanceIdentifier>{found.identifier}</DBInstanceIdentifier>"
            "<DBInstanceClass>db.t3.micro</DBInstanceClass><Engine>postgres</Engine>"
            f"<DBInstanceStatus>{found.status}</DBInstanceStatus>"
            f"<BackupRetentionPeriod>{found.backup_retention_period}</BackupRetentionPeriod>"
            f"{restorable}"
            f"<DBInstanceArn>{found.arn}</DBInstanceArn>"
            "<MasterUsername>lyoadmin</MasterUsername>"
            f"<TagList>{_tags(found.tags)}</TagList>"
            "</DBInstance>"
        )

    def _restore(self, form: dict[str, str]) -> Reply:
        identifier = form["DBInstanceIdentifier"]
        if identifier in self.instances:
            return self.error(
                400, f"DB instance {identifier} already exists", "DBInstanceAlreadyExists"
            )
        tags = {
            form[f"Tags.Tag.{n}.Key"]: form.get(f"Tags.Tag.{n}.Value", "")
            for n in range(1, 50)
            if f"Tags.Tag.{n}.Key" in form
        }
        instance = self.add(Instance(identifier, None, status=self.restored_status, tags=tags))
        return self._ok(
            "RestoreDBInstanceFromDBSnapshot",
            self._member(instance),
        )

    def _delete(self, form: dict[str, str]) -> Reply:
        found = self._instance(form.get("DBInstanceIdentifier"))
        if isinstance(found, Reply):
            return found
        # Deleted at once: the deletion waiter's next DescribeDBInstances finds it gone.
        del self.instances[found.identifier]
        self.deleted.append(found.identifier)
        found.status = "deleting"
        return self._ok("DeleteDBInstance", self._member(found))

    def _list_tags(self, form: dict[str, str]) -> Reply:
        arn = form.get("ResourceName", "")
        found = self._instance(arn.rsplit(":db:", 1)[-1])
        if isinstance(found, Reply):
            return found
        return self._ok("ListTagsForResource", f"<TagList>{_tags(found.tags)}</TagList>")

    def _describe_snapshots(self, form: dict[str, str]) -> Reply:
        found = self._instance(form.get("DBInstanceIdentifier"))
        if isinstance(found, Reply):
            # RDS answers an empty list for an instance without snapshots.
            return self._ok("DescribeDBSnapshots", "<DBSnapshots></DBSnapshots>")
        kind = form.get("SnapshotType")
        members = "".join(
            "<DBSnapshot>"
            f"<DBSnapshotIdentifier>{s.identifier}</DBSnapshotIdentifier>"
            f"<DBInstanceIdentifier>{found.identifier}</DBInstanceIdentifier>"
            f"<SnapshotCreateTime>{_iso(s.created_at)}</SnapshotCreateTime>"
            f"<Engine>postgres</Engine><AllocatedStorage>{s.allocated_storage}</AllocatedStorage>"
            f"<Status>{s.status}</Status><SnapshotType>{s.kind}</SnapshotType>"
            f"<DBSnapshotArn>arn:aws:rds:{found.region}:{ACCOUNT}:snapshot:{s.identifier}"
            "</DBSnapshotArn>"
            "</DBSnapshot>"
            for s in found.snapshots
            if kind is None or s.kind == kind
        )
        return self._ok("DescribeDBSnapshots", f"<DBSnapshots>{members}</DBSnapshots>")

    def _ok(self, action: str, result: str) -> Reply:
        body = (
            f'<{action}Response xmlns="{_NS}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>{_REQUEST_ID}</RequestId></ResponseMetadata>"
            f"</{action}Response>"
        )
        return Reply(200, raw=body.encode(), content_type="text/xml")


def _tags(tags: dict[str, str]) -> str:
    return "".join(
        f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>" for k, v in tags.items()
    )


def _iso(at: datetime | None) -> str:
    assert at is not None
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
