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

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.checks.base import Check, CheckFailed, Criticality, P, Result, Status
from app.units import format_duration, rfc3339


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
            "last_backup_at": None if at is None else rfc3339(at),
            "age_seconds": self.age_seconds,
            "rpo_seconds": self.rpo_seconds,
            "within_rpo": self.within_rpo,
            "size_bytes": self.size_bytes,
            "location": self.location,
            "verified": self.verified,
            "verified_by": self.verified_by,
            **self.extra,
        }


class BackupCheck(Check[P]):
    """Base of the backup sources: the flag, the defaults, and Results that carry the facts."""

    is_backup_source: ClassVar[bool] = True
    default_criticality: ClassVar[Criticality] = "degraded"
    default_interval: ClassVar[float] = 300.0
    default_timeout: ClassVar[float] = 60.0

    def report(
        self, facts: BackupFacts, status: Status, output: str, *, permanent: bool = False
    ) -> Result:
        """A Result with ``facts`` as its details and the backup age as its observed value."""
        details = facts.details()
        age = facts.age_seconds
        if status is Status.PASS:
            return self.passed(output, observed_value=age, observed_unit="s", details=details)
        if status is Status.WARN:
            return self.warned(output, observed_value=age, observed_unit="s", details=details)
        return self.failed(
            output, observed_value=age, observed_unit="s", details=details, permanent=permanent
        )

    def unknown(self, facts: BackupFacts, failure: CheckFailed) -> Result:
        """A fail Result for a source that could not be read: the backup facts stay unknown,
        but the RPO and location are still reported.
        """
        facts.extra.update(failure.context)
        return self.report(facts, Status.FAIL, failure.message, permanent=failure.permanent)

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


# --- timestamps in backup names ---------------------------------------------------------------

# Built-in name timestamps, tried in order when no name_format is configured.
_ISO_IN_NAME = re.compile(
    r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"
    r"(?:[T_ ](?P<H>\d{2})[:\-]?(?P<M>\d{2})[:\-]?(?P<S>\d{2})(?:[.,](?P<f>\d{1,6}))?"
    r"(?P<tz>Z|[+\-]\d{2}:?\d{2})?)?"
)
_COMPACT_IN_NAME = re.compile(
    r"(?<!\d)(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})[_T\-]?(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})"
    r"(?P<tz>Z)?(?!\d)"
)
_STRPTIME_PIECES = {
    "Y": r"\d{4}",
    "y": r"\d{2}",
    "m": r"\d{1,2}",
    "d": r"\d{1,2}",
    "H": r"\d{1,2}",
    "M": r"\d{1,2}",
    "S": r"\d{1,2}",
    "f": r"\d{1,6}",
    "j": r"\d{1,3}",
    "z": r"(?:Z|[+\-]\d{2}:?\d{2}(?::?\d{2})?)",
    "s": r"\d+",
    "%": "%",
}


def name_time_parser(
    name_format: str | None = None, name_regex: str | None = None, name_timezone: str = "UTC"
) -> Callable[[str], datetime | None]:
    """A function giving the time in a backup's name (aware, UTC), or None when it has none.

    Without ``name_format`` it accepts ``backup_YYYYmmdd_HHMMSS`` (also ``YYYYmmddTHHMMSS``) and
    ISO-8601 (also with ``-`` for ``:`` in the time, as file names cannot hold ``:`` everywhere).
    ``name_format`` is a strptime format; ``name_regex`` picks the timestamp out of the name (its
    group ``ts`` or its first group). Times without an offset are in ``name_timezone``.
    """
    zone = ZoneInfo(name_timezone)
    custom = re.compile(name_regex) if name_regex else None
    if name_format:
        fmt = name_format
        finder = custom or re.compile(_format_regex(fmt))

        def by_format(name: str) -> datetime | None:
            match = finder.search(name)
            if not match:
                return None
            text = _chosen_group(match)
            try:
                parsed = datetime.strptime(text, fmt)
            except ValueError:
                return None
            return _aware(parsed, zone)

        return by_format

    def by_default(name: str) -> datetime | None:
        if custom is not None:
            match = custom.search(name)
            return _parse_iso_like(_chosen_group(match), zone) if match else None
        for pattern in (_COMPACT_IN_NAME, _ISO_IN_NAME):
            match = pattern.search(name)
            if match:
                parsed = _from_parts(match, zone)
                if parsed is not None:
                    return parsed
        return None

    return by_default


def _chosen_group(match: re.Match[str]) -> str:
    if "ts" in match.re.groupindex:
        return match.group("ts")
    return match.group(1) if match.re.groups else match.group(0)


def _format_regex(fmt: str) -> str:
    out, i = [], 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            out.append(_STRPTIME_PIECES.get(fmt[i + 1], r".+?"))
            i += 2
        else:
            out.append(re.escape(fmt[i]))
            i += 1
    return "".join(out)


def _parse_iso_like(text: str, zone: ZoneInfo) -> datetime | None:
    for pattern in (_COMPACT_IN_NAME, _ISO_IN_NAME):
        match = pattern.fullmatch(text)
        if match:
            return _from_parts(match, zone)
    return None


def _from_parts(match: re.Match[str], zone: ZoneInfo) -> datetime | None:
    parts = match.groupdict()
    try:
        moment = datetime(
            int(parts["Y"]),
            int(parts["m"]),
            int(parts["d"]),
            int(parts.get("H") or 0),
            int(parts.get("M") or 0),
            int(parts.get("S") or 0),
            int((parts.get("f") or "0").ljust(6, "0")),
        )
    except ValueError:
        return None
    offset = parts.get("tz")
    if not offset:
        return _aware(moment, zone)
    if offset == "Z":
        return moment.replace(tzinfo=UTC)
    sign = 1 if offset[0] == "+" else -1
    digits = offset[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4]))
    return (moment - sign * delta).replace(tzinfo=UTC)


def _aware(moment: datetime, zone: ZoneInfo) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def check_regex(value: str | None) -> str | None:
    """A pydantic validator body: ``value`` compiles as a regular expression."""
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def check_zone(value: str) -> str:
    """A pydantic validator body: ``value`` names a known time zone."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value
