"""Incidents: spans of a check's effective ``fail`` (check incidents) and of verdict ``fail``
(service incidents), computed from the transitions in the state store.

A check incident starts at the first failing run of the streak (``started_at``), is detected when
the check's effective state turns ``fail`` (``detected_at``; rise/fall damping and staleness sit
between the two) and is resolved by the next transition of that check on that replica. When the
replica stopped meanwhile (its coverage span ended), the incident ends with the span: what
happened after is not known. A service incident is a span of verdict ``fail`` of one replica (or,
across replicas, of all of them at once); it lists the check incidents that overlap it and starts
at the first failing run of the critical checks that failed it.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.history.timeline import FAIL, Segment, fail_spans, span_bounds
from app.store.repository import CoverageSpan

CheckRow = tuple[str, str, str | None, str, datetime, datetime | None, str]


@dataclass(slots=True)
class Incident:
    scope: str  # service | check
    service_id: str  # the replica; "*" for a service incident across every replica
    check: str | None
    criticality: str | None
    started_at: float
    detected_at: float
    resolved_at: float | None
    output: str
    failover: bool = False
    checks: list[str] = field(default_factory=list)
    in_maintenance: bool = False  # began inside a maintenance window: planned work
    # The JSON of a resolved incident never changes: rendered once, on first use.
    _json: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        """Stable across refreshes and replicas: the same incident has the same id everywhere."""
        key = f"{self.scope}|{self.service_id}|{self.check}|{self.detected_at:.3f}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def duration(self, now: float) -> float:
        return (self.resolved_at if self.resolved_at is not None else now) - self.started_at

    def json(self, now: float) -> bytes:
        """``as_dict(now)`` as JSON bytes; kept for a resolved incident."""
        if self._json is not None:
            return self._json
        rendered = json.dumps(self.as_dict(now), separators=(",", ":")).encode()
        if self.resolved_at is not None:
            self._json = rendered
        return rendered

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope,
            "service_id": self.service_id,
            "check": self.check,
            "criticality": self.criticality,
            "state": "open" if self.resolved_at is None else "resolved",
            "started_at": rfc3339(self.started_at),
            "detected_at": rfc3339(self.detected_at),
            "resolved_at": None if self.resolved_at is None else rfc3339(self.resolved_at),
            "duration_seconds": round(self.duration(now), 3),
            "time_to_detect_seconds": round(self.detected_at - self.started_at, 3),
            "failover": self.failover,
            "in_maintenance": self.in_maintenance,
            "output": self.output,
            "checks": list(self.checks),
        }


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


class _Coverage:
    """Where each coverage span of one replica ends (None while it runs)."""

    def __init__(self, spans: Sequence[CoverageSpan], now: float) -> None:
        bounds = [span_bounds(span, now) for span in spans]
        self.starts = [start for start, _ in bounds]
        self.ends = [None if end >= now else end for _, end in bounds]

    def end_of_span_at(self, moment: float) -> float | None:
        index = bisect_right(self.starts, moment) - 1
        if index < 0:
            return None
        return self.ends[index]


def check_incidents(
    rows: Iterable[CheckRow],
    spans_by_replica: Mapping[str, Sequence[CoverageSpan]],
    criticality: Callable[[str], str | None],
    now: float,
) -> list[Incident]:
    """Check incidents of every replica, oldest first; ``rows`` in time order."""
    coverage = {sid: _Coverage(spans, now) for sid, spans in spans_by_replica.items()}
    open_incidents: dict[tuple[str, str], tuple[Incident, float | None]] = {}
    done: list[Incident] = []
    for service_id, check, _from, to_status, at_time, first_failure, output in rows:
        at = at_time.timestamp()
        key = (service_id, check)
        current = open_incidents.get(key)
        if current is not None:
            incident, span_end = current
            if span_end is not None and at > span_end:
                # The replica stopped while the check failed: the incident ends with its span.
                incident.resolved_at = span_end
                done.append(incident)
                del open_incidents[key]
                current = None
        if to_status == FAIL:
            if current is None:
                replica = coverage.get(service_id)
                incident = Incident(
                    scope="check",
                    service_id=service_id,
                    check=check,
                    criticality=criticality(check),
                    started_at=min(at, first_failure.timestamp()) if first_failure else at,
                    detected_at=at,
                    resolved_at=None,
                    output=output,
                )
                span_end = replica.end_of_span_at(at) if replica else None
                open_incidents[key] = (incident, span_end)
        elif current is not None:
            current[0].resolved_at = at
            done.append(current[0])
            del open_incidents[key]
    for incident, span_end in open_incidents.values():
        incident.resolved_at = span_end
        done.append(incident)
    done.sort(key=lambda i: i.detected_at)
    return done


def service_incidents(
    service_id: str,
    timeline: Sequence[Segment],
    candidates: Sequence[Incident],
    now: float,
) -> list[Incident]:
    """Spans of verdict ``fail`` in ``timeline``, with the check incidents (``candidates``,
    oldest first) that overlap them."""
    starts = [c.detected_at for c in candidates]
    incidents = []
    for start, end in fail_spans(timeline):
        resolved = None if end >= now else end
        # Check incidents detected before the end of this span, still open at its start.
        overlapping = [
            c
            for c in candidates[: bisect_right(starts, end)]
            if c.resolved_at is None or c.resolved_at >= start
        ]
        causes = [
            c
            for c in overlapping
            if c.criticality == "critical"
            and c.detected_at <= start
            and (c.resolved_at is None or c.resolved_at >= start)
        ]
        started = min([start, *(c.started_at for c in causes)])
        names = sorted({c.check for c in overlapping if c.check})
        if causes:
            output = "Critical checks failed: " + "; ".join(
                f"{c.check}: {c.output}" for c in causes
            )
        else:
            output = "The verdict was fail (no critical check had reported yet, or stale)."
        incidents.append(
            Incident(
                scope="service",
                service_id=service_id,
                check=None,
                criticality=None,
                started_at=started,
                detected_at=start,
                resolved_at=resolved,
                output=output,
                failover=True,  # verdict fail is what /health answers 503 for
                checks=names,
            )
        )
    return incidents


def mark_failover(incidents: Iterable[Incident], timeline: Sequence[Segment], now: float) -> None:
    """Set ``failover`` on check incidents during which the replica's /health answered 503."""
    spans = fail_spans(timeline)
    starts = [start for start, _ in spans]
    for incident in incidents:
        end = incident.resolved_at if incident.resolved_at is not None else now
        index = bisect_right(starts, end) - 1
        while index >= 0:
            span_start, span_end = spans[index]
            if span_end < incident.detected_at:
                break
            if span_start <= end:
                incident.failover = True
                break
            index -= 1


def select_incidents(
    incidents: tuple[Incident, ...],
    *,
    state: str | None = None,
    check: str | None = None,
    since: float | None = None,
    limit: int = 100,
) -> list[Incident]:
    """The incidents matching the filters, newest first (the order they are kept in)."""
    selected = []
    for incident in incidents:
        if since is not None and incident.detected_at < since:
            break  # newest first: the rest is older still
        if state == "open" and incident.resolved_at is not None:
            continue
        if state == "resolved" and incident.resolved_at is None:
            continue
        if check is not None and incident.check != check and check not in incident.checks:
            continue
        selected.append(incident)
        if len(selected) >= limit:
            break
    return selected
