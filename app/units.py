"""Value types of the configuration and of what checks report: durations and sizes as people
write them ("15s", "24h", "1.5GB"), names, and points in time."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
"""What a check or drill name may be: it appears in URLs, metric labels and database names."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_duration(value: object) -> float:
    """Seconds from ``15`` / ``"15s"`` / ``"1h30m"`` / ``"500ms"``. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m or 24h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif text and re.fullmatch(f"(?:{_DURATION_PART.pattern})+", text):
            seconds = sum(
                float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text)
            )
        else:
            raise ValueError(f"{value!r} is not a duration; write it like 30s, 15m, 24h or 1h30m")
    else:
        raise ValueError("expected a duration such as 30s, 15m or 24h")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """``93784`` -> ``"1d2h3m"``; sub-minute values keep one decimal."""
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds % 1 else f"{int(seconds)}s"
    remaining = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
        if len(parts) == 2:
            break
    return "".join(parts)


def parse_size(value: object) -> int:
    """Bytes from ``1048576`` / ``"1MB"`` / ``"512 KiB"``. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 1MB or 512KiB")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float):
        size = int(value)
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(f"{value!r} is not a size; write it like 1MB, 500KiB or 2GB")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    else:
        raise ValueError("expected a size such as 1MB or 512KiB")
    if size < 0:
        raise ValueError("a size cannot be negative")
    return size


def format_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
"""A duration in seconds, written in config as ``30s``, ``15m``, ``24h``."""

ByteSize = Annotated[int, BeforeValidator(parse_size)]
"""A size in bytes, written in config as ``1MB``, ``512KiB``."""


def parse_timestamp(value: object) -> datetime | None:
    """An aware UTC datetime from what a check, a report or the store holds; None otherwise.

    Accepts a datetime (a naive one is taken as UTC), a date (its midnight UTC), ISO-8601 text
    (``2026-11-21T03:00:00Z``, an offset, or none for UTC) and unix seconds. Booleans, empty or
    unreadable text and out-of-range numbers give None, never an exception.
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parse_timestamp(parsed)
    return None


def rfc3339(at: datetime) -> str:
    """A point in time as every response writes it: RFC 3339 in UTC, ``2026-11-28T13:26:29Z``
    (fractions of a second kept). A naive datetime is taken as UTC (the state store keeps UTC).
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def json_default(value: object) -> object:
    """``default=`` for ``json.dumps`` of response bodies: datetimes as :func:`rfc3339`."""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
