"""Scheduler lag over the last minute, in constant memory.

Every job submission reports how late it started. Keeping each sample costs memory in proportion
to the run rate (5,000 checks at a 10 s interval make 30,000 samples a minute, and a list of them
grew RSS by megabytes an hour); here each second of the window is a fixed histogram instead:
log-spaced bins 20 % wide from 0.5 ms to 15 min, a count and the exact maximum. Percentiles are
read as the upper edge of their bin (at most 20 % high, never low), capped at the exact maximum.
"""

from __future__ import annotations

import bisect
import math
import time

WINDOW_SECONDS = 60
_SMALLEST = 0.0005
_GROWTH = 1.2
_BINS = 80
# Upper edges of the bins; a lag at or below edge i falls in bin i, above the last in the last.
_EDGES = [_SMALLEST * _GROWTH**i for i in range(_BINS)]


class LagWindow:
    """Start delays of job runs over the last :data:`WINDOW_SECONDS`: p50, p99, max, count."""

    def __init__(self, window: int = WINDOW_SECONDS) -> None:
        self.window = window
        # One row per second of the window, reused as the window moves on.
        self._counts = [[0] * _BINS for _ in range(window)]
        self._max = [0.0] * window
        self._second = [-1] * window

    def record(self, lag: float, now: float | None = None) -> None:
        second = int(time.monotonic() if now is None else now)
        slot = second % self.window
        if self._second[slot] != second:
            self._counts[slot] = [0] * _BINS
            self._max[slot] = 0.0
            self._second[slot] = second
        lag = lag if math.isfinite(lag) and lag > 0 else 0.0
        self._counts[slot][min(bisect.bisect_left(_EDGES, lag), _BINS - 1)] += 1
        if lag > self._max[slot]:
            self._max[slot] = lag

    def stats(self, now: float | None = None) -> dict[str, float | None]:
        """p50, p99 and max (seconds) and the number of samples over the window."""
        second = int(time.monotonic() if now is None else now)
        counts = [0] * _BINS
        largest = 0.0
        for slot in range(self.window):
            if second - self.window < self._second[slot] <= second:
                for i, count in enumerate(self._counts[slot]):
                    counts[i] += count
                largest = max(largest, self._max[slot])
        samples = sum(counts)
        if not samples:
            return {"p50": None, "p99": None, "max": None, "samples": 0}
        return {
            "p50": min(_quantile(counts, samples, 0.50), largest),
            "p99": min(_quantile(counts, samples, 0.99), largest),
            "max": largest,
            "samples": samples,
        }


def _quantile(counts: list[int], samples: int, q: float) -> float:
    rank = max(1, math.ceil(q * samples))
    seen = 0
    for i, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return _EDGES[i]
    return _EDGES[-1]
