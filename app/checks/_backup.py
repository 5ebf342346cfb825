"""What every backup source reports, built in one place.

Every Result of a backup source (pass, warn and fail) carries the same ``details`` keys, which
``/api/backup-status`` and the ``drwatch_backup_*`` metrics read:

``last_backup_at``  ISO-8601 UTC time of the newest usable backup, or None when there is none
``age_seconds``     seconds since then, or None
``rpo_seconds``     the recovery point objective the age is held against
``within_rpo``      whether the age is within it (False when there is no usable backup)
``size_bytes``      size of that backup, or None when the source does not tell
``location``        where it is (path, URL or ARN; never a secret)
``verified``        True when it was checked to be readable, False when the newest backup failed
                    that check, None when it was not checked
``verified_by``     how it was checked ("pg_restore --list (57 TOC entries)", "sha256 sidecar"...)

Sources add their own keys beside these (``bad_files``, ``pitr_lag_seconds``...).

Backup sources default to ``degraded``: a stale backup must page people (the alert rules watch
``drwatch_backup_age_seconds`` against ``drwatch_backup_rpo_seconds``), but moving traffic to
another region does not make a backup appear, so it must never turn ``/health`` into a 503.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from app.checks.base import Check, Criticality, P, Result, Status
from app.units import format_duration


@dataclass
class BackupFacts:
    """What a backup source found out about its newest usable backup."""

    rpo_seconds: float
    location: str
    last_backup_at: datetime | None = None
    size_bytes: int | None = None
    verified: bool | None = None
    verified_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def age_seconds(self) -> float | None:
        if self.last_backup_at is None:
            return None
        return max(0.0, (self.now - self.last_backup_at).total_seconds())

    @property
    def within_rpo(self) -> bool:
        age = self.age_seconds
        return age is not None and age <= self.rpo_seconds

    @property
    def age_text(self) -> str:
        age = self.age_seconds
        return "unknown" if age is None else format_duration(age)

    @property
    def rpo_text(self) -> str:
        return format_duration(self.rpo_seconds)

    def details(self) -> dict[str, Any]:
        at = self.last_backup_at
        return {
            "last_backup_at": None if at is None else iso_utc(at),
            "age_seconds": self.age_seconds,
            "rpo_seconds": self.rpo_seconds,
            "within_rpo": self.within_rpo,
            "size_bytes": self.size_bytes,
            "location": self.location,
            "verified": self.verified,
            "verified_by": self.verified_by,
            **self.extra,
        }


def iso_utc(at: datetime) -> str:
    """``2026-11-22T03:00:00Z``-style text for an aware (or naive UTC) datetime."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class BackupCheck(Check[P]):
    """Base of the backup sources: the flag, the defaults, and Results that carry the facts."""

    is_backup_source: ClassVar[bool] = True
    default_criticality: ClassVar[Criticality] = "degraded"
    default_interval: ClassVar[float] = 300.0
    default_timeout: ClassVar[float] = 60.0

    def report(self, facts: BackupFacts, status: Status, output: str) -> Result:
        """A Result with ``facts`` as its details and the backup age as its observed value."""
        details = facts.details()
        age = facts.age_seconds
        if status is Status.PASS:
            return self.passed(output, observed_value=age, observed_unit="s", details=details)
        if status is Status.WARN:
            return self.warned(output, observed_value=age, observed_unit="s", details=details)
        return self.failed(output, observed_value=age, observed_unit="s", details=details)

    def stale_or_fresh(self, facts: BackupFacts, what: str, hint: str) -> Result:
        """Fail when the newest backup is older than the RPO, pass otherwise.

        ``what`` names the backup ("Newest dump backup_20261122_030000.sql"), ``hint`` says what
        a stale one probably means.
        """
        if facts.last_backup_at is None:
            return self.report(facts, Status.FAIL, f"{what}: none found. {hint}")
        if not facts.within_rpo:
            return self.report(
                facts,
                Status.FAIL,
                f"{what} is {facts.age_text} old, older than the {facts.rpo_text} RPO. {hint}",
            )
        return self.report(
            facts, Status.PASS, f"{what} is {facts.age_text} old (RPO {facts.rpo_text})."
        )
