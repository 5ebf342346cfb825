"""Every metric drwatch exports, declared once; values are read from the snapshot at scrape time.

The :class:`SnapshotCollector` builds all families from the monitor's current snapshot, the
scheduler and the store writer. Nothing else in drwatch sets a metric. Check outputs and
parameters never become labels, so no secret can reach a metric.

:class:`Exposition` serves ``/metrics`` from bytes: the text is rendered when what it shows has
changed (a new snapshot, the scheduler's liveness, skipped runs, the store writer, drills), at
most once per ``COALESCE`` seconds however fast results arrive, and at least every ``MAX_AGE``
seconds so values measured at render time (backup age, scheduler lag) stay current. With 1,000
checks a render costs tens of milliseconds and a served copy well under one; scrapers that
accept gzip get a copy compressed once per render.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.checks.base import Status
from app.monitor import Snapshot
from app.units import parse_timestamp

if TYPE_CHECKING:
    from app.history.maintenance import MaintenanceSchedule
    from app.scheduler import Scheduler
    from app.store.writer import StoreWriter


@dataclass
class MetricSources:
    """What the collector reads; every field is read at scrape time."""

    snapshot: Callable[[], Snapshot]
    version: str
    scheduler: Scheduler | None = None
    store_writer: StoreWriter | None = None
    drills: Callable[[], list[dict[str, Any]]] | None = None
    # The /api/dr-readiness answer, or None when no standby prerequisite is configured.
    readiness: Callable[[], dict[str, Any] | None] | None = None
    # HistoryCache.metric_values: SLO figures, open incidents, recovery points.
    history: Callable[[], dict[str, Any]] | None = None
    maintenance: MaintenanceSchedule | None = None


# A gauge exported only beside another one of the same check: an objective is exported with the
# measurement it bounds, so the alert rules never compare a lone objective with nothing.
_EXPORTED_BESIDE = {"drwatch_wal_archive_rpo_seconds": "drwatch_wal_archive_age_seconds"}


def _ts(value: Any) -> float | None:
    """Unix seconds of a time as checks and drill reports hold it, for a gauge."""
    moment = parse_timestamp(value)
    return None if moment is None else moment.timestamp()


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


class SnapshotCollector(Collector):
    """Builds every drwatch_* family from the current snapshot."""

    def __init__(self, sources: MetricSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        snapshot = self.sources.snapshot()
        now = time.time()

        # Labels: check, type, criticality. 1 when the effective status is pass or warn.
        up = GaugeMetricFamily(
            "drwatch_check_up",
            "1 if the check's effective status is pass or warn, 0 if fail, stale or pending.",
            labels=["check", "type", "criticality"],
        )
        # Labels: check, status (pass|warn|fail|pending). A state set: 1 for the current status.
        status = GaugeMetricFamily(
            "drwatch_check_status",
            "Effective status of the check as a state set (1 for the current status).",
            labels=["check", "status"],
        )
        # Labels: check.
        duration = GaugeMetricFamily(
            "drwatch_check_duration_seconds",
            "Duration of the check's last run.",
            labels=["check"],
            unit="seconds",
        )
        # Labels: check.
        last_run = GaugeMetricFamily(
            "drwatch_check_last_run_timestamp_seconds",
            "Unix time of the check's last run.",
            labels=["check"],
            unit="seconds",
        )
        # Labels: check.
        interval = GaugeMetricFamily(
            "drwatch_check_interval_seconds",
            "Configured interval of the check.",
            labels=["check"],
            unit="seconds",
        )
        # Labels: check, result (pass|warn|fail).
        runs = CounterMetricFamily(
            "drwatch_check_runs",
            "Runs of the check by raw result (before rise/fall damping).",
            labels=["check", "result"],
        )
        # Labels: check.
        overruns = CounterMetricFamily(
            "drwatch_check_overruns",
            "Runs skipped because the previous run of the check was still going.",
            labels=["check"],
        )
        # Labels: check. For every check, so alert rules can say `unless on(...) ... == 1`.
        maintenance_active = GaugeMetricFamily(
            "drwatch_maintenance_active",
            "1 while a maintenance window covers the check, else 0.",
            labels=["check"],
        )
        # Labels: check.
        replication_lag = GaugeMetricFamily(
            "drwatch_replication_lag_seconds",
            "Replication lag of a replica (0 when it has replayed everything it received).",
            labels=["check"],
            unit="seconds",
        )
        # Labels: check.
        replication_lag_max = GaugeMetricFamily(
            "drwatch_replication_lag_max_seconds",
            "Configured max_replication_lag of a postgres check.",
            labels=["check"],
            unit="seconds",
        )
        # Labels: check.
        tls_expiry = GaugeMetricFamily(
            "drwatch_tls_cert_expiry_timestamp_seconds",
            "Unix time when the leaf TLS certificate seen by the check expires.",
            labels=["check"],
            unit="seconds",
        )
        # Labels: check.
        wal_age = GaugeMetricFamily(
            "drwatch_wal_archive_age_seconds",
            "Age of the last successfully archived WAL segment.",
            labels=["check"],
            unit="seconds",
        )
        # Labels: check.
        wal_rpo = GaugeMetricFamily(
            "drwatch_wal_archive_rpo_seconds",
            "Recovery point objective of the WAL archive.",
            labels=["check"],
            unit="seconds",
        )
        # Labels: source.
        backup_last = GaugeMetricFamily(
            "drwatch_backup_last_success_timestamp_seconds",
            "Unix time of the newest good backup of the source.",
            labels=["source"],
            unit="seconds",
        )
        # Labels: source.
        backup_age = GaugeMetricFamily(
            "drwatch_backup_age_seconds",
            "Age of the newest good backup of the source, at scrape time.",
            labels=["source"],
            unit="seconds",
        )
        # Labels: source.
        backup_rpo = GaugeMetricFamily(
            "drwatch_backup_rpo_seconds",
            "Recovery point objective of the source.",
            labels=["source"],
            unit="seconds",
        )
        # Labels: source.
        backup_size = GaugeMetricFamily(
            "drwatch_backup_size_bytes",
            "Size of the newest good backup of the source.",
            labels=["source"],
            unit="bytes",
        )
        # Labels: source.
        backup_verified = GaugeMetricFamily(
            "drwatch_backup_verified",
            "1 if the newest backup passed verification, 0 if it failed.",
            labels=["source"],
        )

        # The gauges a check type fills from its details, by the names in its ``gauges``.
        detail_gauges = {
            family.name: family for family in (replication_lag, tls_expiry, wal_age, wal_rpo)
        }

        for state in snapshot.checks.values():
            name = state.name
            config = state.config
            effective = state.effective
            up.add_metric(
                [name, config.type, config.criticality],
                1.0 if effective in (Status.PASS, Status.WARN) else 0.0,
            )
            current = effective.value if effective else "pending"
            for option in ("pass", "warn", "fail", "pending"):
                status.add_metric([name, option], 1.0 if option == current else 0.0)
            interval.add_metric([name], config.interval)
            maintenance_active.add_metric([name], 0.0 if state.maintenance is None else 1.0)
            for result_name, count in state.runs.items():
                runs.add_metric([name, result_name], float(count))
            check_class = config.check_class
            max_lag = check_class.replication_lag_threshold(config.params)
            if max_lag is not None:
                replication_lag_max.add_metric([name], float(max_lag))
            result = state.last_result
            if result is None:
                continue
            duration.add_metric([name], result.duration)
            last_run.add_metric([name], result.time.timestamp())
            details = result.details
            values = {
                metric: value
                for key, metric in check_class.gauges.items()
                if (value := _num(details.get(key))) is not None
            }
            for metric, value in values.items():
                if _EXPORTED_BESIDE.get(metric, metric) in values:
                    detail_gauges[metric].add_metric([name], value)
            if check_class.is_backup_source:
                if (rpo := _num(details.get("rpo_seconds"))) is not None:
                    backup_rpo.add_metric([name], rpo)
                last = _ts(details.get("last_backup_at"))
                if last is not None:
                    backup_last.add_metric([name], last)
                    backup_age.add_metric([name], max(0.0, now - last))
                if (size := _num(details.get("size_bytes"))) is not None:
                    backup_size.add_metric([name], size)
                verified = details.get("verified")
                if isinstance(verified, bool):
                    backup_verified.add_metric([name], 1.0 if verified else 0.0)

        scheduler = self.sources.scheduler
        if scheduler is not None:
            for check_name in scheduler.checks:
                overruns.add_metric([check_name], float(scheduler.overruns.get(check_name, 0)))

        yield from (up, status, duration, last_run, interval, runs, overruns, maintenance_active)
        yield from self._maintenance_windows(now)
        yield from (replication_lag, replication_lag_max, tls_expiry, wal_age, wal_rpo)
        yield from (backup_last, backup_age, backup_rpo, backup_size, backup_verified)
        yield from self._drills(now)
        yield from self._readiness()
        yield from self._history()

        health = GaugeMetricFamily(
            "drwatch_health_status", "Overall verdict of /health: 0 fail, 1 warn, 2 pass."
        )
        health.add_metric(
            [], {Status.FAIL: 0.0, Status.WARN: 1.0, Status.PASS: 2.0}[snapshot.status]
        )
        yield health

        # Labels: version.
        build = GaugeMetricFamily("drwatch_build_info", "drwatch build.", labels=["version"])
        build.add_metric([self.sources.version], 1.0)
        yield build

        if scheduler is not None:
            lag = GaugeMetricFamily(
                "drwatch_scheduler_lag_seconds",
                "99th percentile over the last minute of how late check runs started.",
                unit="seconds",
            )
            lag.add_metric([], float(scheduler.lag_stats()["p99"] or 0.0))
            yield lag
            alive = GaugeMetricFamily(
                "drwatch_scheduler_up", "1 while the scheduler ticks (the liveness of drwatch)."
            )
            alive.add_metric([], 1.0 if scheduler.alive else 0.0)
            yield alive
            saturation = GaugeMetricFamily(
                "drwatch_engine_saturation_ratio",
                "Check runs due / runs started over the last minute (1 when drwatch keeps up; "
                "above 1 runs are skipped for want of a run slot).",
                unit="ratio",
            )
            saturation.add_metric([], scheduler.engine.load().saturation_ratio)
            yield saturation

        writer = self.sources.store_writer
        if writer is not None:
            store_up = GaugeMetricFamily(
                "drwatch_store_up", "1 if the last write to the state store succeeded."
            )
            store_up.add_metric([], 1.0 if writer.healthy else 0.0)
            yield store_up
            pending = GaugeMetricFamily(
                "drwatch_store_pending_writes", "Writes waiting to be retried against the store."
            )
            pending.add_metric([], float(writer.pending))
            yield pending
            failures = CounterMetricFamily(
                "drwatch_store_write_failures", "Failed attempts to write to the state store."
            )
            failures.add_metric([], float(writer.failures_total))
            yield failures
            dropped = CounterMetricFamily(
                "drwatch_store_dropped_writes",
                "Writes dropped because the store stayed down until the retry queue filled.",
            )
            dropped.add_metric([], float(writer.dropped_total))
            yield dropped

    def _maintenance_windows(self, now: float) -> Iterator[Metric]:
        schedule = self.sources.maintenance
        if schedule is None:
            return
        windows = schedule.metric_rows(datetime.fromtimestamp(now, UTC))
        if not windows:
            # No series at all rather than a family without samples: nothing is defined.
            return
        # Labels: name, source (config|api), failover (true|false). Always 1, an info metric.
        info = GaugeMetricFamily(
            "drwatch_maintenance_window_info",
            "A maintenance window: every configured one, and ad hoc ones until they end.",
            labels=["name", "source", "failover"],
        )
        for window in windows:
            info.add_metric(
                [window.name, window.source, "true" if window.failover else "false"], 1.0
            )
        yield info

    def _drills(self, now: float) -> Iterator[Metric]:
        if self.sources.drills is None:
            return
        # Labels: drill.
        last_success = GaugeMetricFamily(
            "drwatch_restore_drill_last_success_timestamp_seconds",
            "Unix time when the drill last passed.",
            labels=["drill"],
            unit="seconds",
        )
        # Labels: drill.
        duration = GaugeMetricFamily(
            "drwatch_restore_drill_duration_seconds",
            "Total duration of the drill's last finished run.",
            labels=["drill"],
            unit="seconds",
        )
        # Labels: drill.
        rto = GaugeMetricFamily(
            "drwatch_restore_drill_rto_seconds",
            "Recovery time objective the drill is measured against.",
            labels=["drill"],
            unit="seconds",
        )
        # Labels: drill, result (pass|fail).
        runs = CounterMetricFamily(
            "drwatch_restore_drill_runs",
            "Finished drill runs by result, since drwatch started.",
            labels=["drill", "result"],
        )
        for drill in self.sources.drills():
            name = str(drill["name"])
            rto.add_metric([name], float(drill["rto_seconds"]))
            if (success := _ts(drill.get("last_success_at"))) is not None:
                last_success.add_metric([name], success)
            if (seconds := _num(drill.get("last_duration_seconds"))) is not None:
                duration.add_metric([name], seconds)
            for result_name, count in dict(drill.get("runs", {})).items():
                runs.add_metric([name, result_name], float(count))
        yield from (last_success, duration, rto, runs)

    def _readiness(self) -> Iterator[Metric]:
        report = self.sources.readiness() if self.sources.readiness is not None else None
        if report is None:
            return
        ready = GaugeMetricFamily(
            "drwatch_dr_ready",
            "1 while the standby region could take over (no prerequisite fails), else 0.",
        )
        ready.add_metric([], 1.0 if report["ready"] else 0.0)
        yield ready
        cost = report["if_failed_over_now"]
        loss = GaugeMetricFamily(
            "drwatch_dr_expected_data_loss_seconds",
            "Data a failover to the standby region would lose now (replica lag, or the age of "
            "the newest replicated backup).",
            unit="seconds",
        )
        if (seconds := _num(cost.get("expected_data_loss_seconds"))) is not None:
            loss.add_metric([], seconds)
        yield loss
        recovery = GaugeMetricFamily(
            "drwatch_dr_expected_recovery_seconds",
            "How long a recovery in the standby region would take (the last successful "
            "restore drill's total, else the RTO).",
            unit="seconds",
        )
        recovery.add_metric([], float(cost["expected_recovery_seconds"]))
        yield recovery

    def _history(self) -> Iterator[Metric]:
        if self.sources.history is None:
            return
        values = self.sources.history()
        # Labels: window (1d|7d|30d|90d).
        availability = GaugeMetricFamily(
            "drwatch_slo_availability_ratio",
            "Share of measured time with verdict pass or warn (no-data time excluded).",
            labels=["window"],
            unit="ratio",
        )
        # Labels: window (1d|7d|30d|90d).
        budget = GaugeMetricFamily(
            "drwatch_slo_error_budget_remaining_ratio",
            "Share of the window's error budget left (negative when overspent).",
            labels=["window"],
            unit="ratio",
        )
        for window, ratio in values["availability"].items():
            if ratio is not None:
                availability.add_metric([window], float(ratio))
        for window, ratio in values["budget_remaining"].items():
            if ratio is not None:
                budget.add_metric([window], float(ratio))
        yield from (availability, budget)
        if values["incidents_open"] is not None:
            open_incidents = GaugeMetricFamily(
                "drwatch_incidents_open",
                "Open incidents (service and check) of this drwatch, from the shared history.",
            )
            open_incidents.add_metric([], float(values["incidents_open"]))
            yield open_incidents
        # Labels: source.
        recovery_point = GaugeMetricFamily(
            "drwatch_recovery_point_timestamp_seconds",
            "Time of the newest backup of the source that any replica has seen.",
            labels=["source"],
            unit="seconds",
        )
        for source, moment in values["recovery_points"].items():
            recovery_point.add_metric([source], float(moment))
        yield recovery_point


def build_registry(sources: MetricSources) -> CollectorRegistry:
    """A registry of our own (not the process-global one), so several apps can coexist."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(sources))
    return registry


# Renders of /metrics are at least this far apart, however fast results arrive.
COALESCE = 0.25
# And at most this old, for the values measured at render time (backup age, scheduler lag).
MAX_AGE = 5.0
# gzip level of the compressed copy: 1 is several times faster than the default 9 and the
# exposition (long runs of repeated names) still shrinks about tenfold.
GZIP_LEVEL = 1


class Exposition:
    """The /metrics body of one registry, rendered once per change and served as bytes."""

    def __init__(
        self,
        registry: CollectorRegistry,
        sources: MetricSources,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.sources = sources
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._key: Hashable = None
        self._rendered_at = float("-inf")
        self._text = b""
        self._gzipped: bytes | None = None

    def _state_key(self) -> Hashable:
        """What the exposition shows besides the snapshot and values measured at render time."""
        sources = self.sources
        scheduler, writer = sources.scheduler, sources.store_writer
        return (
            None if scheduler is None else (scheduler.alive, sum(scheduler.overruns.values())),
            None
            if writer is None
            else (writer.healthy, writer.pending, writer.failures_total, writer.dropped_total),
            None if sources.drills is None else repr(sources.drills()),
        )

    def body(self, *, gzipped: bool = False) -> bytes:
        """The current exposition (gzip-compressed when ``gzipped``)."""
        now = self._clock()
        age = now - self._rendered_at
        if age >= COALESCE:
            # A snapshot is immutable and replaced on every change: identity is the test.
            snapshot, key = self.sources.snapshot(), self._state_key()
            if snapshot is not self._snapshot or key != self._key or age >= MAX_AGE:
                self._text = generate_latest(self.registry)
                self._gzipped = None
                self._snapshot, self._key, self._rendered_at = snapshot, key, now
        if not gzipped:
            return self._text
        if self._gzipped is None:
            self._gzipped = gzip.compress(self._text, compresslevel=GZIP_LEVEL, mtime=0)
        return self._gzipped
