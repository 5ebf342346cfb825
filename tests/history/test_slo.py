"""SLO figures from synthetic histories with known answers, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from app.config import parse_config
from app.history.cache import HistoryView, compute
from app.history.maintenance import MaintenanceSchedule
from app.history.slo import SloSpec
from app.store.repository import CoverageSpan, Store, VerdictTransition
from tests.history.synthetic import DAY, NOW, SyntheticReplica, at, configs, outage

CHECKS = configs(("database", "critical"), ("openai", "degraded"))
CRITICALITY = {c.name: c.criticality for c in CHECKS}.get
SINCE = at(NOW - 90 * DAY)
WINDOW_30D = 30 * DAY


async def _views(url: str, service_id: str = "r1", now: float = NOW) -> dict[str, HistoryView]:
    store = Store.from_url(url, service_id)
    try:
        rows = await store.history(at(now - 90 * DAY))
    finally:
        await store.dispose()
    return compute(rows, service_id, SloSpec(), CRITICALITY, now)


async def _three_outages(url: str) -> None:
    """30 days and an hour of one replica with three database outages of 10 min, 45 min and
    2 h (fall 3, rise 2, every 30 s) and a 20-minute openai failure (degraded: verdict warn)."""
    store = Store.from_url(url, "r1")
    replica = SyntheticReplica(store, CHECKS)
    replica.run(
        NOW - WINDOW_30D - 3600,
        NOW,
        [
            *outage("database", NOW - 25 * DAY, 600),
            *outage("database", NOW - 12 * DAY, 2700),
            *outage("database", NOW - 2 * DAY, 7200),
            *outage("openai", NOW - 5 * DAY, 1200),
        ],
    )
    await replica.save()
    await store.dispose()


async def test_a_30_day_history_with_three_outages_gives_the_exact_figures(state_url: str) -> None:
    """Availability, budget, MTTR and MTTD of three outages of known lengths, to the second."""
    await _three_outages(state_url)
    slo = (await _views(state_url))["self"].slo
    month = slo["windows"]["30d"]
    # Each outage is detected at its third failing run (60 s in) and resolved at the second
    # passing run (30 s after the first): verdict fail for length - 60 + 30 seconds.
    bad = (600 - 30) + (2700 - 30) + (7200 - 30)
    assert month["bad_seconds"] == bad == 10410
    assert month["good_seconds"] == WINDOW_30D - bad
    assert month["no_data_seconds"] == 0
    assert month["maintenance_seconds"] == 0
    assert month["availability"] == round((WINDOW_30D - bad) / WINDOW_30D, 6) == 0.995984
    assert month["error_budget_seconds"] == 2592.0
    assert month["error_budget_remaining_seconds"] == 2592.0 - bad
    assert month["error_budget_remaining_ratio"] == round((2592.0 - bad) / 2592.0, 6)
    assert month["incidents"] == 3
    # From the first failing run to the second passing run.
    assert month["mttr_seconds"] == ((600 + 30) + (2700 + 30) + (7200 + 30)) / 3 == 3530
    assert month["mttd_seconds"] == 60
    week = slo["windows"]["7d"]
    assert week["bad_seconds"] == 7170
    assert week["incidents"] == 1
    assert week["mttr_seconds"] == 7230
    day = slo["windows"]["1d"]
    assert (day["availability"], day["bad_seconds"], day["incidents"]) == (1.0, 0, 0)
    assert day["mttr_seconds"] is None
    assert slo["objective"] == 0.999
    assert slo["targets"] == {"mttr_seconds": 7200.0, "detect_seconds": 300.0}


async def test_a_replica_killed_for_ten_minutes_shows_ten_minutes_of_no_data(
    state_url: str,
) -> None:
    """kill -9 at the last extension, back 10 minutes later: 600 s of no data, never uptime."""
    store = Store.from_url(state_url, "r1")
    replica = SyntheticReplica(store, CHECKS)
    killed = NOW - 10 * 3600
    replica.run(NOW - 2 * DAY, killed, closed=False)
    replica.run(killed + 600, NOW)
    await replica.save()
    await store.dispose()
    day = (await _views(state_url))["self"].slo["windows"]["1d"]
    assert day["no_data_seconds"] == 600
    assert day["good_seconds"] == DAY - 600
    assert day["bad_seconds"] == 0
    assert day["availability"] == 1.0
    # The budget is a share of measured time only.
    assert day["error_budget_seconds"] == round(0.001 * (DAY - 600), 3)


async def test_time_before_the_first_verdict_of_a_run_is_no_data(state_url: str) -> None:
    """A run that never got its first round of critical checks in has no verdict: no data."""
    store = Store.from_url(state_url, "r1")
    replica = SyntheticReplica(store, CHECKS)
    replica.run(NOW - DAY, NOW)
    await replica.save()
    # A second run with no result at all (the database check never answered).
    await store.extend_coverage(CoverageSpan("late", "r1", at(NOW), at(NOW + 3600), True))
    await store.dispose()
    day = (await _views(state_url, now=NOW + 3600))["self"].slo["windows"]["1d"]
    assert day["no_data_seconds"] == 3600
    assert day["good_seconds"] == DAY - 3600


async def _two_replicas(url: str) -> None:
    """r1 fails from 10:00 to 11:00, r2 from 10:15 to 10:45, both covering the whole day."""
    start = NOW - DAY
    for service_id, fail_from, fail_to in (
        ("r1", NOW - 14 * 3600, NOW - 13 * 3600),
        ("r2", NOW - 14 * 3600 + 900, NOW - 14 * 3600 + 2700),
    ):
        store = Store.from_url(url, service_id)
        await store.record_verdict_transitions(
            [
                VerdictTransition(None, "pass", at(start)),
                VerdictTransition("pass", "fail", at(fail_from)),
                VerdictTransition("fail", "pass", at(fail_to)),
            ]
        )
        span = SyntheticReplica(store, CHECKS)
        span.run(start, NOW)
        for covered in span.spans:
            await store.extend_coverage(covered)
        await store.dispose()


@pytest.mark.parametrize(
    ("asking", "scope", "bad", "service_incidents"),
    [("r1", "self", 3600, 1), ("r2", "self", 1800, 1), ("r1", "all", 1800, 1)],
)
async def test_two_replicas_answer_for_themselves_and_together(
    state_url: str, asking: str, scope: str, bad: float, service_incidents: int
) -> None:
    """Each replica counts its own verdict; scope=all is down only while every replica fails."""
    await _two_replicas(state_url)
    view = (await _views(state_url, asking))[scope]
    day = view.slo["windows"]["1d"]
    assert day["bad_seconds"] == bad
    assert day["good_seconds"] == DAY - bad
    assert day["incidents"] == service_incidents


def test_the_objective_is_read_as_people_write_it() -> None:
    """99.9%, 99.9 and 0.999 are the same objective; a window must be one the API answers."""
    for written in ("99.9%", 99.9, 0.999, "0.999"):
        assert SloSpec.model_validate({"objective": written}).objective == pytest.approx(0.999)
    with pytest.raises(ValueError, match="window must be one of"):
        SloSpec(window="14d")


async def test_an_outage_inside_a_maintenance_window_burns_no_budget(state_url: str) -> None:
    """A day with a 1 h window and a 10 min database outage inside it: 100 % available, 3,600 s
    of maintenance, and the outage listed as `in_maintenance`, out of MTTR and MTTD."""
    window_start = NOW - 6 * 3600
    store = Store.from_url(state_url, "r1")
    replica = SyntheticReplica(store, CHECKS)
    replica.run(NOW - DAY, NOW, list(outage("database", window_start + 1200, 600)))
    await replica.save()
    rows = await store.history(at(NOW - 90 * DAY))
    await store.dispose()
    config = parse_config(
        {
            "checks": [
                {
                    "name": c.name,
                    "type": "postgres",
                    "criticality": c.criticality,
                    "params": {"dsn": "postgresql://u@db/app"},
                }
                for c in CHECKS
            ],
            "maintenance": [
                {
                    "name": "patching",
                    "reason": "database minor upgrade",
                    "checks": ["database"],
                    "start": at(window_start).isoformat(),
                    "end": at(window_start + 3600).isoformat(),
                }
            ],
        }
    )
    schedule = MaintenanceSchedule(config.maintenance, [(c.name, c.criticality) for c in CHECKS])

    def spans(check: str | None, start: float, end: float) -> list[tuple[float, float]]:
        return [
            (opened.timestamp(), closed.timestamp())
            for opened, closed in schedule.spans(check, at(start), at(end))
        ]

    views = compute(rows, "r1", SloSpec(), CRITICALITY, NOW, spans)
    day = views["self"].slo["windows"]["1d"]
    assert day["maintenance_seconds"] == 3600
    assert day["availability"] == 1.0
    assert day["bad_seconds"] == 0
    assert day["good_seconds"] == DAY - 3600
    assert (day["incidents"], day["mttr_seconds"], day["mttd_seconds"]) == (1, None, None)
    service = [i for i in views["self"].incidents if i.scope == "service"]
    check = [i for i in views["self"].incidents if i.scope == "check"]
    assert [i.in_maintenance for i in service] == [True]
    assert [i.in_maintenance for i in check] == [True]
    assert service[0].as_dict(NOW)["in_maintenance"] is True
