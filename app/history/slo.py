"""The availability SLO of the plans (99.9 %, MTTR 2 h, detection within 5 min) measured from
the verdict history.

Availability over a window is good / (good + bad): good is verdict ``pass`` or ``warn`` (the
region keeps traffic), bad is verdict ``fail`` (``/health`` answers 503). Time without data
(drwatch was not running, or had no verdict yet) and time in maintenance are reported apart and
never counted as good. The error budget is ``1 - objective`` of the measured time.

Burn rates are computed the way the shipped Prometheus rules compute them
(helm/drwatch/rules/drwatch-slo.yaml): the share of the window's measured time with verdict
``fail`` (``avg_over_time`` of "any critical check down", which skips the time without samples),
divided by the error budget ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.history.incidents import Incident
from app.history.timeline import FAIL, Segment, totals
from app.units import Duration

WINDOWS = {"1d": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0, "90d": 90 * 86400.0}
BURN_WINDOWS = {"5m": 300.0, "1h": 3600.0, "6h": 6 * 3600.0, "3d": 3 * 86400.0}
LONGEST_WINDOW = max(WINDOWS.values())


class SloSpec(BaseModel):
    """``slo:`` in the configuration; the defaults are the plans' numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objective: float = Field(
        0.999, description="Availability objective: 99.9%, 99.9 or 0.999.", gt=0, lt=1
    )
    window: str = Field("30d", description="The window the headline figures use (1d|7d|30d|90d).")
    mttr_target: Duration = Field(7200.0, description="Mean time to restore the plans ask for.")
    detect_target: Duration = Field(300.0, description="Time to detect the plans ask for.")

    @field_validator("objective", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            try:
                number = float(text.removesuffix("%"))
            except ValueError:
                raise ValueError(f"{value!r} is not a percentage such as 99.9%") from None
            return number / 100 if text.endswith("%") or number > 1 else number
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 1:
            return value / 100
        return value

    @field_validator("window")
    @classmethod
    def _known_window(cls, value: str) -> str:
        if value not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
        return value


Spans = Sequence[tuple[float, float]]


def window_figures(
    timeline: Sequence[Segment],
    incidents: Sequence[Incident],
    spec: SloSpec,
    start: float,
    end: float,
    maintenance: Spans = (),
) -> dict[str, Any]:
    """The SLO figures of one window; ``incidents`` are service incidents, ``maintenance`` the
    disjoint spans of maintenance windows covering a critical check."""
    seconds = totals(timeline, start, end)
    # Time inside a maintenance window is neither good nor bad (nor no data): planned work.
    in_maintenance = 0.0
    for opened, closed in maintenance:
        lo, hi = max(opened, start), min(closed, end)
        if hi <= lo:
            continue
        inside = totals(timeline, lo, hi)
        for status in seconds:
            seconds[status] -= inside[status]
        in_maintenance += hi - lo
    good = seconds["pass"] + seconds["warn"]
    bad = seconds[FAIL]
    measured = good + bad
    budget = (1 - spec.objective) * measured
    remaining = budget - bad
    in_window = [i for i in incidents if start <= i.detected_at < end]
    # Incidents that began inside a window are planned work: listed, but not the service's
    # time to detect or restore.
    counted = [i for i in in_window if not i.in_maintenance]
    resolved = [i.duration(end) for i in counted if i.resolved_at is not None]
    detected = [i.detected_at - i.started_at for i in counted]
    return {
        "availability": round(good / measured, 6) if measured else None,
        "good_seconds": round(good, 3),
        "bad_seconds": round(bad, 3),
        "no_data_seconds": round(seconds[None], 3),
        "maintenance_seconds": round(in_maintenance, 3),
        "error_budget_seconds": round(budget, 3),
        "error_budget_remaining_seconds": round(remaining, 3),
        "error_budget_remaining_ratio": round(remaining / budget, 6) if budget else None,
        "incidents": len(in_window),
        "mttr_seconds": round(sum(resolved) / len(resolved), 3) if resolved else None,
        "mttd_seconds": round(sum(detected) / len(detected), 3) if detected else None,
    }


def burn_rate(timeline: Sequence[Segment], spec: SloSpec, start: float, end: float) -> float | None:
    """Error ratio over the measured part of [start, end] divided by the budget ratio."""
    seconds = totals(timeline, start, end)
    measured = seconds["pass"] + seconds["warn"] + seconds[FAIL]
    if not measured:
        return None
    return round(seconds[FAIL] / measured / (1 - spec.objective), 6)


def slo_answer(
    timeline: Sequence[Segment],
    incidents: Sequence[Incident],
    spec: SloSpec,
    now: float,
    maintenance: Spans = (),
) -> dict[str, Any]:
    """The body of ``GET /api/slo`` (without the fields saying whose view and how fresh)."""
    return {
        "objective": spec.objective,
        "window": spec.window,
        "windows": {
            name: window_figures(timeline, incidents, spec, now - length, now, maintenance)
            for name, length in WINDOWS.items()
        },
        "burn_rates": {
            name: burn_rate(timeline, spec, now - length, now)
            for name, length in BURN_WINDOWS.items()
        },
        "targets": {"mttr_seconds": spec.mttr_target, "detect_seconds": spec.detect_target},
    }
