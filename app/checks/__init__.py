"""The check types drwatch knows: one line per type, nothing else needs to learn about them.

``CHECK_TYPES`` names each type's class as ``"module:Class"``; :func:`check_class` imports a
type's module the first time a check of that type is configured. The vendor SDKs some types need
(boto3, google-auth, aiohttp) are thus loaded only by the processes that use them.

What a type can do (be restored by a drill, take pushes, export gauges) is said by attributes of
its class, see :class:`app.checks.base.Check`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.checks.base import Check, Criticality

CHECK_TYPES: dict[str, str] = {
    "postgres": "app.checks.postgres:PostgresCheck",
    "redis": "app.checks.redis:RedisCheck",
    "http": "app.checks.http:HttpCheck",
    "tls": "app.checks.tls:TlsCheck",
    "twilio": "app.checks.twilio:TwilioCheck",
    "vapi": "app.checks.vapi:VapiCheck",
    "google_calendar": "app.checks.google_calendar:GoogleCalendarCheck",
    "openai": "app.checks.openai:OpenAICheck",
    "whatsapp": "app.checks.whatsapp:WhatsAppCheck",
    "statuspage": "app.checks.statuspage:StatuspageCheck",
    "backup_files": "app.checks.backup_files:BackupFilesCheck",
    "s3": "app.checks.s3:S3Check",
    "rds": "app.checks.rds:RdsCheck",
    "rds_replica": "app.checks.rds_replica:RdsReplicaCheck",
    "s3_replication": "app.checks.s3_replication:S3ReplicationCheck",
    "cloudformation": "app.checks.cloudformation:CloudFormationCheck",
    "route53_health": "app.checks.route53_health:Route53HealthCheck",
    "render": "app.checks.render:RenderCheck",
    "wal_archive": "app.checks.wal_archive:WalArchiveCheck",
    "heartbeat": "app.checks.heartbeat:HeartbeatCheck",
}


@functools.cache
def check_class(type_name: str) -> type[Check[Any]]:
    """The class of a check type, importing its module on first use. KeyError if unknown."""
    module_name, _, class_name = CHECK_TYPES[type_name].partition(":")
    found: type[Check[Any]] = getattr(importlib.import_module(module_name), class_name)
    return found


def types_that(ability: str) -> list[str]:
    """Names of the types whose class sets ``ability`` (e.g. ``"restorable"``), sorted.

    This imports every type's module, so it is for messages about a rare mistake in the
    configuration, never for the normal start-up path.
    """
    return sorted(name for name in CHECK_TYPES if getattr(check_class(name), ability))


@dataclass(frozen=True)
class QuickStart:
    """A check built from the guarded application's own variables when no YAML is given.

    ``params`` maps each parameter to the variable that gives it; the check is built only when
    every one of them is set (directly or through ``<VAR>_FILE``).
    """

    name: str
    type: str
    criticality: Criticality
    params: Mapping[str, str]
    fixed: Mapping[str, Any] = field(default_factory=dict)


# Plain data beside the registry, rather than attributes of the classes, so that building the
# quick start does not import every type's module (and its SDK) to learn which variables to read.
QUICK_START: tuple[QuickStart, ...] = (
    QuickStart("database", "postgres", "critical", {"dsn": "DATABASE_URL"}),
    QuickStart("redis", "redis", "critical", {"url": "REDIS_URL"}),
    QuickStart(
        "twilio",
        "twilio",
        "degraded",
        {"account_sid": "TWILIO_ACCOUNT_SID", "auth_token": "TWILIO_AUTH_TOKEN"},
    ),
    QuickStart("vapi", "vapi", "degraded", {"api_key": "VAPI_API_KEY"}),
    QuickStart(
        "google-calendar",
        "google_calendar",
        "degraded",
        {"credentials_file": "GOOGLE_APPLICATION_CREDENTIALS", "calendar_id": "GOOGLE_CALENDAR_ID"},
    ),
    QuickStart("openai", "openai", "degraded", {"api_key": "OPENAI_API_KEY"}),
    QuickStart(
        "whatsapp",
        "whatsapp",
        "degraded",
        {"token": "WHATSAPP_TOKEN", "phone_number_id": "WHATSAPP_PHONE_NUMBER_ID"},
    ),
    # A directory of dumps says nothing about how often they are taken; daily is the common case.
    QuickStart("backups", "backup_files", "degraded", {"path": "BACKUP_DIR"}, {"rpo": "24h"}),
)
