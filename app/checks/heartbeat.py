"""``heartbeat``: a backup job that pings drwatch (a dead man's switch) keeps pinging.

The job calls ``POST /api/backups/{name}/start`` when it begins, ``/ping`` when it succeeded and
``/fail`` when it failed, with the source's ``token`` as a bearer token and optionally
``{"size_bytes", "duration_seconds", "location", "checksum", "message"}``. The endpoints write each
event to the state store before answering; this check reads them back
(``Store.heartbeat_events``) and judges:

* no success within ``period + grace`` (the RPO unless ``rpo`` is set) fails;
* a failure newer than the last success fails, with the job's message;
* a start with no success or failure after it for longer than ``max_runtime`` fails: the job hangs
  or died without reporting;
* a success much smaller (``size_bytes`` below ``min_size_ratio`` of the median of recent
  successes) or much faster (``duration_seconds`` below ``min_duration_ratio`` of the median)
  warns "suspiciously small/fast": a dump of an empty or wrong database also succeeds.

The job's own ``duration_seconds`` is used, or else the time since its ``start`` ping.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, SecretStr

from app.checks import base
from app.checks._backup import BackupCheck, BackupFacts
from app.checks.base import CheckFailed, Result, Status
from app.units import Duration, format_duration, format_size, rfc3339

if TYPE_CHECKING:
    from app.store.repository import HeartbeatEvent

# Fewer earlier runs than this and the median says nothing.
_MIN_HISTORY = 3


@dataclass(frozen=True)
class _Run:
    at: datetime
    size_bytes: int | None
    duration_seconds: float | None


class HeartbeatCheck(BackupCheck["HeartbeatCheck.Params"]):
    """Judges the pings a backup job pushed: on time, not failed, not hung, plausible."""

    class Params(base.Params):
        token: SecretStr = Field(
            min_length=8,
            description="Bearer token the backup job sends with its pings (8 characters or more).",
        )
        period: Duration = Field(
            86400.0, description="How often the job runs and should report a success."
        )
        grace: Duration = Field(
            3600.0, description="How late a success may be past the period before it fails."
        )
        max_runtime: Duration = Field(
            4 * 3600.0,
            description="A start with no success or failure after it for longer fails (hung job).",
        )
        rpo: Duration | None = Field(
            None, description="Recovery point objective; default: period + grace."
        )
        min_size_ratio: float = Field(
            0.5,
            ge=0.0,
            le=1.0,
            description="Warn when a success reports a size below this share of the recent median.",
        )
        min_duration_ratio: float = Field(
            0.2,
            ge=0.0,
            le=1.0,
            description="Warn when a success took less than this share of the recent median time.",
        )
        history: int = Field(
            10,
            ge=_MIN_HISTORY,
            le=100,
            description="How many earlier successes the size and duration medians cover.",
        )

    default_interval: ClassVar[float] = 60.0
    # A success ping is the job saying it finished: no second run is needed to believe it, or
    # the source would stay failing (and /api/backup-status 503) until the next interval.
    default_rise: ClassVar[int] = 1
    default_timeout: ClassVar[float] = 10.0
    accepts_pushes: ClassVar[bool] = True

    @classmethod
    def push_token(cls, params: HeartbeatCheck.Params) -> str | None:
        return params.token.get_secret_value()

    @property
    def rpo_seconds(self) -> float:
        p = self.params
        return p.rpo if p.rpo is not None else p.period + p.grace

    async def run(self) -> Result:
        p = self.params
        facts = BackupFacts(rpo_seconds=self.rpo_seconds, location=f"heartbeat {self.name}")
        facts.extra["bad_files"] = []
        store = self.context.store
        if store is None:
            return self.unknown(
                facts,
                CheckFailed(
                    "Heartbeat sources need drwatch's state store, which this run does not "
                    "have; run the check inside the service.",
                    permanent=True,
                ),
            )
        try:
            # Enough events to find history successes between starts and failures. Bounded
            # inside the run's own timeout, so a hung store is named as the cause instead of
            # the generic "no answer" of the runner.
            events = await asyncio.wait_for(
                store.heartbeat_events(self.name, p.history * 3 + 10), self.timeout * 0.8
            )
        except TimeoutError:
            return self.unknown(
                facts,
                CheckFailed(
                    f"The state store did not answer within {format_duration(self.timeout * 0.8)}"
                    f", so the pings of {self.name} are unknown; the store is hung or overloaded."
                ),
            )
        except Exception as exc:
            return self.unknown(
                facts,
                CheckFailed(
                    f"The state store cannot be read ({type(exc).__name__}), so the pings of "
                    f"{self.name} are unknown; check the store."
                ),
            )
        return self._judge(events, facts)

    def _judge(self, events: Sequence[HeartbeatEvent], facts: BackupFacts) -> Result:
        p = self.params
        now = facts.now
        events = [_sane(e) for e in events]
        runs = _successes(events)
        latest = {kind: _newest(events, kind) for kind in ("start", "success", "fail")}
        success, failure, start = latest["success"], latest["fail"], latest["start"]
        expected = f"expected every {format_duration(p.period)} + {format_duration(p.grace)} grace"

        if success is not None:
            facts.last_backup_at = _aware(success.at)
            facts.size_bytes = success.size_bytes
            facts.location = success.location or facts.location
            facts.extra.update(checksum=success.checksum)
        if runs:
            facts.extra["duration_seconds"] = runs[0].duration_seconds
        running_since = None
        if start is not None and all(
            e is None or _aware(e.at) < _aware(start.at) for e in (success, failure)
        ):
            running_since = _aware(start.at)
        facts.extra["running_since"] = rfc3339(running_since) if running_since else None
        failed_last = failure is not None and (
            success is None or _aware(failure.at) > _aware(success.at)
        )
        if failure is not None:
            facts.extra.update(
                last_failure_at=rfc3339(_aware(failure.at)),
                last_failure_message=failure.message,
            )

        if failed_last and failure is not None:
            said = f": {failure.message}" if failure.message else ""
            facts.extra["bad_files"] = [
                {"path": failure.location or facts.location, "problem": failure.message or "failed"}
            ]
            facts.verified = False
            last = (
                f"; the last success was {facts.age_text} ago"
                if success
                else "; it has never succeeded"
            )
            return self.report(
                facts,
                Status.FAIL,
                f"Backup job {self.name} reported failure at {rfc3339(_aware(failure.at))}{said}"
                f"{last}.",
            )
        if running_since is not None and (now - running_since).total_seconds() > p.max_runtime:
            return self.report(
                facts,
                Status.FAIL,
                f"Backup job {self.name} started at {rfc3339(running_since)} and has not "
                f"finished within max_runtime {format_duration(p.max_runtime)}; it hangs or died "
                "without reporting.",
            )
        if success is None:
            return self.report(
                facts,
                Status.FAIL,
                f"No successful ping from backup job {self.name} yet ({expected}); the job is "
                "not running, or it pings another URL or with another token.",
            )
        if not facts.within_rpo:
            return self.report(
                facts,
                Status.FAIL,
                f"The last successful ping from backup job {self.name} was {facts.age_text} ago, "
                f"past the {facts.rpo_text} RPO ({expected}); the job is not running or not "
                "reporting.",
            )
        warnings = self._plausibility(runs, facts)
        if warnings:
            return self.report(facts, Status.WARN, " ".join(warnings))
        running = (
            f" A new run is in progress since {rfc3339(running_since)}." if running_since else ""
        )
        size = f", {format_size(success.size_bytes)}" if success.size_bytes is not None else ""
        return self.report(
            facts,
            Status.PASS,
            f"Backup job {self.name} last succeeded {facts.age_text} ago (RPO "
            f"{facts.rpo_text}){size}.{running}",
        )

    def _plausibility(self, runs: list[_Run], facts: BackupFacts) -> list[str]:
        p = self.params
        if not runs:
            return []
        newest, earlier = runs[0], runs[1 : 1 + p.history]
        warnings: list[str] = []
        sizes = [r.size_bytes for r in earlier if r.size_bytes is not None]
        if newest.size_bytes is not None and len(sizes) >= _MIN_HISTORY:
            typical = statistics.median(sizes)
            facts.extra["typical_size_bytes"] = typical
            if typical > 0 and newest.size_bytes < typical * p.min_size_ratio:
                warnings.append(
                    f"The last backup of {self.name} is suspiciously small: "
                    f"{format_size(newest.size_bytes)} against a median of "
                    f"{format_size(typical)} over the previous {len(sizes)} runs; it may have "
                    "dumped an empty or wrong database."
                )
        durations = [r.duration_seconds for r in earlier if r.duration_seconds is not None]
        if newest.duration_seconds is not None and len(durations) >= _MIN_HISTORY:
            typical_duration = statistics.median(durations)
            facts.extra["typical_duration_seconds"] = typical_duration
            if (
                typical_duration > 0
                and newest.duration_seconds < typical_duration * p.min_duration_ratio
            ):
                warnings.append(
                    f"The last backup of {self.name} was suspiciously fast: "
                    f"{format_duration(newest.duration_seconds)} against a median of "
                    f"{format_duration(typical_duration)}; it may have skipped most of the data."
                )
        return warnings


# Longer than any backup job runs; a larger stored duration is garbage, not a measurement.
_MAX_DURATION_SECONDS = 10 * 365 * 86400.0


def _sane(event: HeartbeatEvent) -> HeartbeatEvent:
    """``event`` with numbers no backup can have (infinite, NaN, negative) dropped.

    The API rejects them, but a store written by an older version or by hand may hold them, and
    one such row must not fail every run of the check for good.
    """
    duration, size = event.duration_seconds, event.size_bytes
    plausible_duration = (
        isinstance(duration, int | float)
        and math.isfinite(duration)
        and 0 <= duration <= _MAX_DURATION_SECONDS
    )
    plausible_size = isinstance(size, int) and size >= 0
    if (duration is None or plausible_duration) and (size is None or plausible_size):
        return event
    return replace(
        event,
        duration_seconds=duration if plausible_duration else None,
        size_bytes=size if plausible_size else None,
    )


def _newest(events: Sequence[HeartbeatEvent], kind: str) -> HeartbeatEvent | None:
    return next((e for e in events if e.kind == kind), None)


def _successes(events: Sequence[HeartbeatEvent]) -> list[_Run]:
    """Successful runs newest first, each with its duration (reported, or since its start)."""
    runs: list[_Run] = []
    started: datetime | None = None
    for event in sorted(events, key=lambda e: _aware(e.at)):
        at = _aware(event.at)
        if event.kind == "start":
            started = at
        elif event.kind == "success":
            duration = event.duration_seconds
            if duration is None and started is not None:
                duration = (at - started).total_seconds()
            runs.append(_Run(at, event.size_bytes, duration))
            started = None
        elif event.kind == "fail":
            started = None
    runs.reverse()
    return runs


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; the store writes UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
