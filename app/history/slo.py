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


def window_figures(
    timeline: Sequence[Segment],
    incidents: Sequence[Incident],
    spec: SloSpec,
    start: float,
    end: float,
) -> dict[str, Any]:
    """The SLO figures of one window; ``incidents`` are service incidents."""
    seconds = totals(timeline, start, end)
    good = seconds["pass"] + seconds["warn"]
    bad = seconds[FAIL]
    # Maintenance windows will be subtracted here, from good and bad alike, once they exist.
    maintenance = 0.0
    measured = good + bad
    budget = (1 - spec.objective) * measured
    remaining = budget - bad
    in_window = [i for i in incidents if start <= i.detected_at < end]
    resolved = [i.duration(end) for i in in_window if i.resolved_at is not None]
    detected = [i.detected_at - i.started_at for i in in_window]
    return {
        "availability": round(good / measured, 6) if measured else None,
        "good_seconds": round(good, 3),
        "bad_seconds": round(bad, 3),
        "no_data_seconds": round(seconds[None], 3),
        "maintenance_seconds": maintenance,
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
    timeline: Sequence[Segment], incidents: Sequence[Incident], spec: SloSpec, now: float
) -> dict[str, Any]:
    """The body of ``GET /api/slo`` (without the fields saying whose view and how fresh)."""
    return {
        "objective": spec.objective,
        "window": spec.window,
        "windows": {
            name: window_figures(timeline, incidents, spec, now - length, now)
            for name, length in WINDOWS.items()
        },
        "burn_rates": {
            name: burn_rate(timeline, spec, now - length, now)
            for name, length in BURN_WINDOWS.items()
        },
        "targets": {"mttr_seconds": spec.mttr_target, "detect_seconds": spec.detect_target},
    }
