"""Timelines of the overall verdict: per replica, and merged across replicas.

A replica's timeline covers only its coverage spans (the time drwatch ran and probed there);
within a span the verdict is that of the span's last verdict transition so far, and there is no
verdict before the span's first one (start-up, before the first round of critical checks). Time
outside every segment, or in a segment whose status is None, is **no data**: it is never counted
as good, the way peer tools that report 100 % uptime across their own outage do.

Times are Unix seconds (floats): the refresh computes over 90 days of history every few seconds,
and float arithmetic keeps that cheap.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from app.store.repository import CoverageSpan

# Coverage spans are extended every minute; one not extended for this long belongs to a replica
# that stopped without closing it (kill -9, a lost node), and ends at its last extension.
COVERAGE_EXTEND_INTERVAL = 60.0
LIVE_MARGIN = 2.5 * COVERAGE_EXTEND_INTERVAL

FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    end: float
    status: str | None  # pass | warn | fail; None: drwatch ran but had no verdict yet


def span_bounds(span: CoverageSpan, now: float) -> tuple[float, float]:
    """Start and end of a coverage span; a span still being extended runs until now."""
    start, end = span.started_at.timestamp(), span.ended_at.timestamp()
    if not span.closed and end >= now - LIVE_MARGIN:
        end = now
    return start, max(start, min(end, now))


def replica_timeline(
    spans: Sequence[CoverageSpan],
    verdicts: Sequence[tuple[float, str]],
    now: float,
) -> list[Segment]:
    """The verdict segments of one replica: ``spans`` in start order, ``verdicts`` as
    (at, to_status) in time order.
    """
    segments: list[Segment] = []
    times = [at for at, _ in verdicts]
    previous_end = float("-inf")
    for span in spans:
        start, end = span_bounds(span, now)
        start = max(start, previous_end)  # one service id, two processes: never count twice
        if end <= start:
            continue
        previous_end = end
        index = bisect_right(times, start)
        # The span's own verdict at its start: the last transition at or after the span's start
        # and not after the clip (the store gives the last one before the read window).
        status: str | None = None
        span_start = span.started_at.timestamp()
        if index > 0 and times[index - 1] >= span_start:
            status = verdicts[index - 1][1]
        cursor = start
        while index < len(verdicts) and times[index] <= end:
            at, to_status = verdicts[index]
            if at > cursor:
                segments.append(Segment(cursor, at, status))
                cursor = at
            status = to_status
            index += 1
        if end > cursor:
            segments.append(Segment(cursor, end, status))
    return _joined(segments)


def merged_timeline(timelines: Sequence[Sequence[Segment]]) -> list[Segment]:
    """Every replica's view at once: the service is down when every replica with a verdict says
    ``fail`` (as Route 53 sees it when all regions fail); up when any says pass or warn.
    """
    if len(timelines) == 1:
        return list(timelines[0])
    points = sorted({p for timeline in timelines for s in timeline for p in (s.start, s.end)})
    cursors = [0] * len(timelines)
    segments: list[Segment] = []
    for start, end in pairwise(points):
        statuses: list[str] = []
        for i, timeline in enumerate(timelines):
            while cursors[i] < len(timeline) and timeline[cursors[i]].end <= start:
                cursors[i] += 1
            if cursors[i] < len(timeline):
                segment = timeline[cursors[i]]
                if segment.start <= start and segment.status is not None:
                    statuses.append(segment.status)
        if not statuses:
            continue
        if all(s == FAIL for s in statuses):
            status = FAIL
        elif "pass" in statuses:
            status = "pass"
        else:
            status = "warn"
        segments.append(Segment(start, end, status))
    return _joined(segments)


def totals(segments: Iterable[Segment], start: float, end: float) -> dict[str | None, float]:
    """Seconds per status within [start, end]; the rest of the window is under None."""
    seconds: dict[str | None, float] = {"pass": 0.0, "warn": 0.0, FAIL: 0.0, None: 0.0}
    for segment in segments:
        if segment.end <= start or segment.start >= end or segment.status is None:
            continue
        seconds[segment.status] += min(segment.end, end) - max(segment.start, start)
    seconds[None] = (end - start) - seconds["pass"] - seconds["warn"] - seconds[FAIL]
    return seconds


def fail_spans(segments: Iterable[Segment]) -> list[tuple[float, float]]:
    """The contiguous spans of verdict ``fail``."""
    spans: list[tuple[float, float]] = []
    for segment in segments:
        if segment.status != FAIL:
            continue
        if spans and spans[-1][1] == segment.start:
            spans[-1] = (spans[-1][0], segment.end)
        else:
            spans.append((segment.start, segment.end))
    return spans


def _joined(segments: list[Segment]) -> list[Segment]:
    """Adjacent segments with the same status as one."""
    joined: list[Segment] = []
    for segment in segments:
        if joined and joined[-1].status == segment.status and joined[-1].end == segment.start:
            joined[-1] = Segment(joined[-1].start, segment.end, segment.status)
        else:
            joined.append(segment)
    return joined
