"""The check types drwatch knows: one line per type, nothing else needs to learn about them."""

from __future__ import annotations

from typing import Any

from app.checks.backup_files import BackupFilesCheck
from app.checks.base import Check
from app.checks.google_calendar import GoogleCalendarCheck
from app.checks.heartbeat import HeartbeatCheck
from app.checks.http import HttpCheck
from app.checks.openai import OpenAICheck
from app.checks.postgres import PostgresCheck
from app.checks.rds import RdsCheck
from app.checks.redis import RedisCheck
from app.checks.render import RenderCheck
from app.checks.s3 import S3Check
from app.checks.statuspage import StatuspageCheck
from app.checks.tls import TlsCheck
from app.checks.twilio import TwilioCheck
from app.checks.vapi import VapiCheck
from app.checks.wal_archive import WalArchiveCheck
from app.checks.whatsapp import WhatsAppCheck

CHECK_TYPES: dict[str, type[Check[Any]]] = {
    "postgres": PostgresCheck,
    "redis": RedisCheck,
    "http": HttpCheck,
    "tls": TlsCheck,
    "twilio": TwilioCheck,
    "vapi": VapiCheck,
    "google_calendar": GoogleCalendarCheck,
    "openai": OpenAICheck,
    "whatsapp": WhatsAppCheck,
    "statuspage": StatuspageCheck,
    "backup_files": BackupFilesCheck,
    "s3": S3Check,
    "rds": RdsCheck,
    "render": RenderCheck,
    "wal_archive": WalArchiveCheck,
    "heartbeat": HeartbeatCheck,
}
