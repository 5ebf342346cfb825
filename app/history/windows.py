"""What a maintenance window is: its configuration, its occurrences, spans of time.

A window covers some checks (names or ``fnmatch`` patterns; every check when ``checks`` is left
out) for a span of time, either one-off (``start`` and ``end``, RFC 3339) or recurring (a crontab
``cron`` read in an IANA ``timezone``, open for ``duration``). Recurring occurrences follow the
zone's daylight saving changes: a Sunday 03:00 Europe/Rome window opens at 02:00 UTC in winter
and at 01:00 UTC in summer. What an open window does to a check, and the ad hoc windows of the
state store, are :mod:`app.history.maintenance`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.units import NAME_PATTERN, Duration, format_duration, rfc3339

Source = Literal["config", "api"]
Span = tuple[datetime, datetime]
Problems = list[tuple[str, str]]
"""(field, message) pairs; the field is relative to the window (``cron``, ``checks.1``)."""

# Occurrences of a recurring window compared for overlaps, from each starting point.
_OVERLAP_SAMPLE = 40
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class WindowSpec(BaseModel):
    """One entry of ``maintenance:`` as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    checks: list[str] | None = Field(None, min_length=1)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    cron: str | None = None
    duration: Duration | None = None
    timezone: str = "UTC"
    reason: str = Field(min_length=1, max_length=500)
    failover: bool = False


def crontab_trigger(expression: str, zone: ZoneInfo) -> CronTrigger:
    """A trigger with crontab's meaning. Raises ValueError on a bad expression.

    APScheduler 3 counts days of the week from Monday = 0, crontab from Sunday = 0 (7 is Sunday
    too), so the day-of-week field is rewritten with names: ``0 3 * * 0`` is a Sunday.
    """
    fields = expression.split()
    if len(fields) == 5:
        fields[4] = _crontab_weekdays(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=zone)


def _crontab_weekdays(text: str) -> str:
    if text in ("*", "?"):
        return text
    days: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        if step_text and not step_text.isdigit():
            raise ValueError(f"day of week {part!r}: the step must be a number")
        step = int(step_text) if step_text else 1
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            first, last = span.split("-", 1)
            low, high = _weekday(first), _weekday(last)
        else:
            low = _weekday(span)
            high = 6 if step_text else low
        if step < 1 or low > high:
            raise ValueError(f"day of week {part!r} is not a valid range")
        days.update(day % 7 for day in range(low, high + 1, step))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday(text: str) -> int:
    word = text.strip().lower()
    if word.isdigit() and int(word) <= 7:
        return int(word)
    if word in _WEEKDAYS:
        return _WEEKDAYS.index(word)
    raise ValueError(f"{text!r} is not a day of the week (0-7 or sun-sat)")


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone ``name``; raises ValueError naming it when there is none."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Rome or UTC"
        ) from None


def resolve_checks(
    patterns: Sequence[str] | None, check_names: Iterable[str]
) -> tuple[frozenset[str] | None, list[int]]:
    """The check names the patterns cover (None: every check), and the indexes of the patterns
    that match no check."""
    if patterns is None:
        return None, []
    names = list(check_names)
    covered: set[str] = set()
    unmatched = []
    for index, pattern in enumerate(patterns):
        matched = fnmatch.filter(names, pattern)
        if not matched:
            unmatched.append(index)
        covered.update(matched)
    return frozenset(covered), unmatched


@dataclass(frozen=True)
class Window:
    """A maintenance window: one-off (``start``, ``end``) or recurring (``cron``, ``duration``)."""

    name: str
    reason: str
    source: Source = "config"
    checks: frozenset[str] | None = None  # the names covered; None: every check
    patterns: tuple[str, ...] | None = None  # ``checks`` as written
    failover: bool = False
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    duration: float = 0.0
    timezone: str = "UTC"
    trigger: CronTrigger | None = field(default=None, compare=False, repr=False)

    def covers(self, check: str) -> bool:
        return self.checks is None or check in self.checks

    def occurrences(self, start: datetime, end: datetime) -> Iterator[Span]:
        """The window's spans (UTC) that overlap ``[start, end)``, in order."""
        if self.trigger is None:
            assert self.start is not None and self.end is not None
            if self.start < end and self.end > start:
                yield self.start.astimezone(UTC), self.end.astimezone(UTC)
            return
        length = timedelta(seconds=self.duration)
        for opens in _fires(self.trigger, start - length):
            if opens >= end:
                return
            if opens + length > start:
                yield opens, opens + length

    def open_at(self, at: datetime) -> Span | None:
        """The occurrence that is open at ``at``, if any."""
        return next(self.occurrences(at, at + timedelta(microseconds=1)), None)

    def next_boundary(self, after: datetime) -> datetime | None:
        """The first moment after ``after`` when the window opens or closes."""
        for opens, closes in self.occurrences(after, datetime.max.replace(tzinfo=UTC)):
            return opens if opens > after else closes
        return None

    def describe(self) -> dict[str, Any]:
        """What the window is, as the API lists it (without its times)."""
        data: dict[str, Any] = {
            "name": self.name,
            "source": self.source,
            "checks": sorted(self.checks) if self.checks is not None else None,
            "reason": self.reason,
            "failover": self.failover,
        }
        if self.trigger is not None:
            data["cron"] = self.cron
            data["duration_seconds"] = self.duration
            data["timezone"] = self.timezone
        return data


def window_from_spec(
    spec: WindowSpec, check_names: Iterable[str]
) -> tuple[Window | None, Problems]:
    """A configured window, or None with every problem by field."""
    problems: Problems = []
    one_off = spec.start is not None or spec.end is not None
    recurring = spec.cron is not None or spec.duration is not None
    checks, unmatched = resolve_checks(spec.checks, check_names)
    for index in unmatched:
        assert spec.checks is not None
        problems.append((f"checks.{index}", f"{spec.checks[index]!r} matches no configured check"))
    zone: ZoneInfo | None = None
    try:
        zone = zone_named(spec.timezone)
    except ValueError as exc:
        problems.append(("timezone", str(exc)))
    if one_off and recurring:
        where = "cron" if spec.cron is not None else "duration"
        problems.append(
            (
                where,
                "a window is either one-off (start and end) or recurring (cron and duration), "
                "not both",
            )
        )
        return None, problems
    if not one_off and not recurring:
        problems.append(("", "needs start and end (one-off) or cron and duration (recurring)"))
        return None, problems
    base = Window(
        name=spec.name,
        reason=spec.reason,
        checks=checks,
        patterns=tuple(spec.checks) if spec.checks is not None else None,
        failover=spec.failover,
        timezone=spec.timezone,
    )
    if one_off:
        if spec.start is None:
            problems.append(("start", "required with end (RFC 3339, e.g. 2026-03-01T02:00:00Z)"))
        if spec.end is None:
            problems.append(("end", "required with start (RFC 3339, e.g. 2026-03-01T04:00:00Z)"))
        if spec.start is not None and spec.end is not None and spec.end <= spec.start:
            problems.append(("end", f"must be after start ({rfc3339(spec.start)})"))
        if problems:
            return None, problems
        return replace(base, start=spec.start, end=spec.end), problems
    trigger = None
    if spec.cron is None:
        problems.append(("cron", "required with duration (a crontab expression, e.g. 0 3 * * 0)"))
    else:
        try:
            # With an unknown zone the expression is still checked (in UTC), to report both.
            trigger = crontab_trigger(spec.cron, zone or ZoneInfo("UTC"))
        except ValueError as exc:
            problems.append(("cron", f"not a valid crontab expression: {exc}"))
    if spec.duration is None:
        problems.append(("duration", "required with cron (e.g. 2h)"))
    elif spec.duration <= 0:
        problems.append(("duration", "must be greater than zero"))
    if problems or trigger is None or spec.duration is None:
        return None, problems
    window = replace(base, cron=spec.cron, duration=spec.duration, trigger=trigger)
    problems.extend(_occurrence_problems(window))
    return (None if problems else window), problems


def _occurrence_problems(window: Window) -> Problems:
    """A recurring window that never opens, or whose occurrences would overlap each other.

    Occurrences are compared from now and around the zone's next two daylight saving changes,
    where a daily gap shrinks to 23 h (APScheduler takes about a millisecond per occurrence, so
    a year of a per-minute cron is out of the question at start-up).
    """
    assert window.trigger is not None
    now = datetime.now(UTC)
    starts = [now, *(change - timedelta(days=2) for change in _offset_changes(window, now))]
    seen_any = False
    for start in starts:
        previous: datetime | None = None
        for count, fire in enumerate(_fires(window.trigger, start)):
            if count == _OVERLAP_SAMPLE:
                break
            seen_any = True
            if previous is not None and (fire - previous).total_seconds() < window.duration:
                gap = format_duration((fire - previous).total_seconds())
                message = (
                    f"{format_duration(window.duration)} is longer than the {gap} between two "
                    f"occurrences ({rfc3339(previous)} and {rfc3339(fire)}): the window would "
                    "overlap itself"
                )
                return [("duration", message)]
            previous = fire
    if not seen_any:
        return [("cron", "never occurs (no such date)")]
    return []


def _fires(trigger: CronTrigger, start: datetime) -> Iterator[datetime]:
    """The trigger's fire times (UTC) from ``start`` on.

    When clocks go back, APScheduler fires a wall-clock time of the repeated hour twice (fold 0
    and fold 1); cron runs it once, and so does a window: the second one is skipped.
    """
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None:
        repeated = fire.fold == 1 and fire.replace(fold=0).utcoffset() != fire.utcoffset()
        if not repeated:
            yield fire.astimezone(UTC)
        fire = trigger.get_next_fire_time(fire, fire)


def _offset_changes(window: Window, now: datetime) -> list[datetime]:
    """The next two days (within a year) on which the window's zone changes its UTC offset."""
    zone = zone_named(window.timezone)
    changes = []
    day = now
    offset = day.astimezone(zone).utcoffset()
    for _ in range(400):
        day += timedelta(days=1)
        current = day.astimezone(zone).utcoffset()
        if current != offset:
            changes.append(day)
            offset = current
            if len(changes) == 2:
                break
    return changes


def merge_spans(spans: Iterable[Span], start: datetime, end: datetime) -> list[Span]:
    """The union of ``spans`` clipped to ``[start, end)``, as ordered disjoint spans."""
    merged: list[Span] = []
    for opens, closes in sorted(spans):
        opens, closes = max(opens, start), min(closes, end)
        if opens >= closes:
            continue
        if merged and opens <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
        else:
            merged.append((opens, closes))
    return merged


def span_seconds(spans: Iterable[Span]) -> float:
    return sum((closes - opens).total_seconds() for opens, closes in spans)
