"""Scheduler lag statistics over the last minute, in constant memory."""

from __future__ import annotations

import random
import tracemalloc

from app.lag_window import LagWindow


def test_memory_stays_constant_however_many_runs_are_recorded() -> None:
    """300,000 samples (an hour of 5,000 checks every minute) cost no more than a few."""
    window = LagWindow()
    for second in range(60):
        window.record(0.01, now=float(second))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(300_000):
        window.record(0.001 * (i % 97), now=60.0 + i / 5000)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 64 * 1024, grown


def test_percentiles_are_close_and_never_low() -> None:
    """p50 and p99 within 20 % above the exact values; max exact; the sample count exact."""
    rng = random.Random(7)
    lags = [rng.lognormvariate(-5, 1.2) for _ in range(20_000)]
    window = LagWindow()
    for i, lag in enumerate(lags):
        window.record(lag, now=1000.0 + i * 0.002)
    stats = window.stats(now=1040.0)
    exact = sorted(lags)
    p50, p99 = exact[len(exact) // 2], exact[int(len(exact) * 0.99) - 1]
    assert stats["samples"] == len(lags)
    assert stats["max"] == max(lags)
    assert p50 <= stats["p50"] <= p50 * 1.2  # type: ignore[operator]
    assert p99 <= stats["p99"] <= p99 * 1.2  # type: ignore[operator]


def test_samples_older_than_a_minute_drop_out() -> None:
    """A slow start 61 s ago no longer counts; nothing recorded reads as no samples."""
    window = LagWindow()
    assert window.stats(now=0.0) == {"p50": None, "p99": None, "max": None, "samples": 0}
    window.record(5.0, now=100.0)
    window.record(0.002, now=150.0)
    assert window.stats(now=155.0)["max"] == 5.0
    later = window.stats(now=161.0)
    assert later["max"] == 0.002
    assert later["samples"] == 1
