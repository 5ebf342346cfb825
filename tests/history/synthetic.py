"""Synthetic histories with known answers, made the way a running drwatch makes them.

A :class:`SyntheticReplica` feeds check results at chosen times into a real :class:`Monitor`
(rise/fall damping, verdict, recovery points) and writes what its sinks emit, and its coverage
spans, through the repository's own methods. Nothing is inserted by hand-written SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.checks.base import Result, Status
from app.config import CheckConfig, parse_config
from app.monitor import Monitor
from app.store.repository import (
    CoverageSpan,
    RecoveryPoint,
    Store,
    Transition,
    VerdictTransition,
)

# A fixed "now" for answers computed at a known time: 2026-11-30T00:00:00Z.
NOW = datetime(2026, 11, 30, tzinfo=UTC).timestamp()
DAY = 86400.0
INTERVAL = 30.0


def configs(*checks: tuple[str, str], interval: float = INTERVAL) -> list[CheckConfig]:
    """(name, criticality) pairs as postgres checks with fall 3, rise 2."""
    document = {
        "checks": [
            {
                "name": name,
                "type": "postgres",
                "criticality": criticality,
                "interval": f"{interval:g}s",
                "params": {"dsn": "postgresql://h/d"},
            }
            for name, criticality in checks
        ]
    }
    return list(parse_config(document).checks)


def at(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


@dataclass
class SyntheticReplica:
    """One replica's history: runs of drwatch (coverage spans) with the results they saw."""

    store: Store
    checks: list[CheckConfig]
    transitions: list[Transition] = field(default_factory=list)
    verdicts: list[VerdictTransition] = field(default_factory=list)
    points: list[RecoveryPoint] = field(default_factory=list)
    spans: list[CoverageSpan] = field(default_factory=list)

    def run(
        self,
        start: float,
        end: float,
        results: Iterable[tuple[float, str, str]] = (),
        *,
        closed: bool = True,
        details: dict[str, Any] | None = None,
    ) -> Monitor:
        """A drwatch process running from ``start`` to ``end``: every check passes at ``start``,
        then ``results`` (time, check, status) arrive in time order. ``closed=False`` is a
        process killed at ``end`` (kill -9), whose span simply stops being extended.
        """
        monitor = Monitor(
            self.checks,
            service_id=self.store.service_id,
            on_transition=self.transitions.append,
            on_verdict=self.verdicts.append,
            on_recovery_point=self.points.append,
        )
        for check in self.checks:
            monitor.record(
                check.name, Result(Status.PASS, "ok", time=at(start), details=details or {})
            )
        for moment, name, status in sorted(results):
            output = f"{name} {status} at {moment:.0f}"
            monitor.record(name, Result(Status(status), output, time=at(moment)))
        self.spans.append(
            CoverageSpan(uuid.uuid4().hex, self.store.service_id, at(start), at(end), closed)
        )
        return monitor

    async def save(self) -> None:
        """Write everything through the repository, as the StoreWriter would."""
        await self.store.record_transitions(self.transitions)
        await self.store.record_verdict_transitions(self.verdicts)
        for point in self.points:
            await self.store.record_recovery_point(point)
        for span in self.spans:
            await self.store.extend_coverage(span)


def outage(
    check: str, start: float, seconds: float, interval: float = INTERVAL
) -> list[tuple[float, str, str]]:
    """A check failing every run from ``start`` for ``seconds``, then passing twice (rise 2)."""
    runs = int(seconds // interval)
    failing = [(start + i * interval, check, "fail") for i in range(runs)]
    recovering = [(start + seconds, check, "pass"), (start + seconds + interval, check, "pass")]
    return failing + recovering
