"""Every query of the state store lives here; the rest of drwatch calls these named methods.

The store is the shared memory of what happened (transitions of checks and of the verdict,
coverage, recovery points, heartbeat events, drill runs) and the coordination of replicas (leases,
drill slots). Probing and ``/health`` never wait for it: the service writes through
:class:`StoreWriter`, which retries in the background while the store is down, and reads history
through one background refresh (:mod:`app.history.cache`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store.db import create_engine
from app.store.tables import (
    check_transitions,
    coverage,
    drill_runs,
    heartbeat_events,
    leases,
    maintenance_windows,
    recovery_points,
    verdict_transitions,
)
from app.store.writer import StoreWriter as StoreWriter  # the writer's old home
from app.units import parse_timestamp


@dataclass(frozen=True, slots=True)
class Transition:
    """An effective state change of one check."""

    check_name: str
    from_status: str | None
    to_status: str
    at: datetime
    output: str
    first_failure_at: datetime | None = None  # to a fail: the first failing run of the streak


@dataclass(frozen=True, slots=True)
class VerdictTransition:
    """A change of the overall verdict of one replica (``from_status`` None: the first verdict
    once the first round of critical checks is in)."""

    from_status: str | None
    to_status: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RecoveryPoint:
    """A distinct backup a backup source has seen."""

    source: str
    backup_at: datetime
    first_seen_at: datetime
    size_bytes: int | None = None
    verified: bool | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class CoverageSpan:
    """A span during which one replica ran and probed; ``closed`` after a clean shutdown."""

    span_id: str
    service_id: str
    started_at: datetime
    ended_at: datetime
    closed: bool = False


@dataclass(frozen=True, slots=True)
class HistoryRows:
    """What the history answers are computed from: rows since a moment, plus the last transition
    before it of every check and replica (the state each was in when the window opened).

    ``check_transitions`` rows: (service_id, check_name, from_status, to_status, at,
    first_failure_at, output); ``verdict_transitions`` rows: (service_id, from_status, to_status,
    at). Both in time order.
    """

    check_transitions: list[tuple[str, str, str | None, str, datetime, datetime | None, str]]
    verdict_transitions: list[tuple[str, str | None, str, datetime]]
    coverage: list[CoverageSpan]


@dataclass(frozen=True, slots=True)
class HeartbeatEvent:
    """A push from a backup job: kind is ``start``, ``success`` or ``fail``."""

    source: str
    kind: str
    at: datetime
    size_bytes: int | None = None
    duration_seconds: float | None = None
    location: str | None = None
    checksum: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class MaintenanceRecord:
    """An ad hoc maintenance window as the store keeps it; ``checks`` None covers every check."""

    name: str
    checks: tuple[str, ...] | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    failover: bool
    created_by: str
    planned_ends_at: datetime | None = None  # as asked when it started; None: ends_at


class Store:
    """The state store: SQLite by default, PostgreSQL when several replicas share it."""

    def __init__(self, engine: AsyncEngine, service_id: str = "drwatch") -> None:
        self.engine = engine
        self.service_id = service_id

    @classmethod
    def from_url(cls, url: str, service_id: str = "drwatch") -> Store:
        return cls(create_engine(url), service_id)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # -- transitions

    async def record_transitions(self, transitions: Sequence[Transition]) -> None:
        if not transitions:
            return
        rows = [
            {
                "check_name": t.check_name,
                "from_status": t.from_status,
                "to_status": t.to_status,
                "at": t.at,
                "output": t.output,
                "service_id": self.service_id,
                "first_failure_at": t.first_failure_at,
            }
            for t in transitions
        ]
        async with self.engine.begin() as conn:
            await conn.execute(insert(check_transitions), rows)

    async def record_verdict_transitions(self, transitions: Sequence[VerdictTransition]) -> None:
        if not transitions:
            return
        rows = [
            {
                "service_id": self.service_id,
                "from_status": t.from_status,
                "to_status": t.to_status,
                "at": t.at,
            }
            for t in transitions
        ]
        async with self.engine.begin() as conn:
            await conn.execute(insert(verdict_transitions), rows)

    # -- coverage, recovery points

    def _insert(self, table: Table) -> Any:
        """INSERT with ON CONFLICT support for the store's dialect."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    async def extend_coverage(self, span: CoverageSpan) -> None:
        """Create the span or move its end (idempotent, so a retried write does no harm)."""
        statement = self._insert(coverage).values(
            span_id=span.span_id,
            service_id=span.service_id,
            started_at=span.started_at,
            ended_at=span.ended_at,
            closed=span.closed,
        )
        statement = statement.on_conflict_do_update(
            index_elements=["span_id"],
            set_={"ended_at": statement.excluded.ended_at, "closed": statement.excluded.closed},
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)

    async def record_recovery_point(self, point: RecoveryPoint) -> None:
        """Keep the first sighting of a backup: a later replica seeing it again changes nothing."""
        statement = (
            self._insert(recovery_points)
            .values(
                source=point.source,
                backup_at=point.backup_at,
                size_bytes=point.size_bytes,
                verified=point.verified,
                location=point.location,
                first_seen_at=point.first_seen_at,
                service_id=self.service_id,
            )
            .on_conflict_do_nothing(index_elements=["source", "backup_at"])
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)

    async def newest_recovery_points(self) -> dict[str, RecoveryPoint]:
        """Per source, the newest backup that did not fail verification."""
        usable = recovery_points.c.verified.is_(None) | recovery_points.c.verified.is_(True)
        newest = (
            select(recovery_points.c.source, func.max(recovery_points.c.backup_at).label("at"))
            .where(usable)
            .group_by(recovery_points.c.source)
            .subquery()
        )
        query = select(recovery_points).join(
            newest,
            (recovery_points.c.source == newest.c.source)
            & (recovery_points.c.backup_at == newest.c.at),
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            row.source: RecoveryPoint(
                source=row.source,
                backup_at=row.backup_at,
                first_seen_at=row.first_seen_at,
                size_bytes=row.size_bytes,
                verified=row.verified,
                location=row.location,
            )
            for row in rows
        }

    # -- history

    async def history(self, since: datetime) -> HistoryRows:
        """The rows the incident and SLO answers need for the time since ``since``."""
        ct = check_transitions
        vt = verdict_transitions
        # The last row before the window per check and replica: ids grow in the order one
        # replica's writer inserts them, which is the order of its own transitions.
        before_check = (
            select(func.max(ct.c.id))
            .where(ct.c.at < since)
            .group_by(ct.c.service_id, ct.c.check_name)
        )
        before_verdict = select(func.max(vt.c.id)).where(vt.c.at < since).group_by(vt.c.service_id)
        check_columns = (
            ct.c.service_id,
            ct.c.check_name,
            ct.c.from_status,
            ct.c.to_status,
            ct.c.at,
            ct.c.first_failure_at,
            ct.c.output,
        )
        verdict_columns = (vt.c.service_id, vt.c.from_status, vt.c.to_status, vt.c.at)
        async with self.engine.connect() as conn:
            checks = await _all(
                conn,
                select(*check_columns)
                .where((ct.c.at >= since) | ct.c.id.in_(before_check))
                .order_by(ct.c.at, ct.c.id),
            )
            verdicts = await _all(
                conn,
                select(*verdict_columns)
                .where((vt.c.at >= since) | vt.c.id.in_(before_verdict))
                .order_by(vt.c.at, vt.c.id),
            )
            spans = await _all(
                conn,
                select(coverage)
                .where(coverage.c.ended_at >= since)
                .order_by(coverage.c.started_at),
            )
        return HistoryRows(
            check_transitions=[tuple(row) for row in checks],
            verdict_transitions=[tuple(row) for row in verdicts],
            coverage=[
                CoverageSpan(r.span_id, r.service_id, r.started_at, r.ended_at, bool(r.closed))
                for r in spans
            ],
        )

    async def trim_history(self, before: datetime) -> int:
        """Delete history older than ``before`` (the retention); the number of rows deleted."""
        deleted = 0
        async with self.engine.begin() as conn:
            for statement in (
                delete(check_transitions).where(check_transitions.c.at < before),
                delete(verdict_transitions).where(verdict_transitions.c.at < before),
                delete(coverage).where(coverage.c.ended_at < before),
                delete(recovery_points).where(recovery_points.c.first_seen_at < before),
                delete(heartbeat_events).where(heartbeat_events.c.at < before),
                delete(drill_runs).where(
                    drill_runs.c.started_at < before, drill_runs.c.status != "running"
                ),
            ):
                deleted += (await conn.execute(statement)).rowcount or 0
        return deleted

    async def transitions(
        self, check_name: str | None = None, *, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first."""
        query = select(check_transitions).order_by(
            check_transitions.c.at.desc(), check_transitions.c.id.desc()
        )
        if check_name is not None:
            query = query.where(check_transitions.c.check_name == check_name)
        async with self.engine.connect() as conn:
            result = await conn.execute(query.limit(limit))
            return [dict(row._mapping) for row in result]

    # -- heartbeats

    async def record_heartbeat_event(self, event: HeartbeatEvent) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(heartbeat_events).values(
                    source=event.source,
                    kind=event.kind,
                    at=event.at,
                    size_bytes=event.size_bytes,
                    duration_seconds=event.duration_seconds,
                    location=event.location,
                    checksum=event.checksum,
                    message=event.message,
                )
            )

    async def heartbeat_events(self, source: str, limit: int = 50) -> list[HeartbeatEvent]:
        """Newest first."""
        query = (
            select(heartbeat_events)
            .where(heartbeat_events.c.source == source)
            .order_by(heartbeat_events.c.at.desc(), heartbeat_events.c.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [
                HeartbeatEvent(
                    source=row.source,
                    kind=row.kind,
                    at=row.at,
                    size_bytes=row.size_bytes,
                    duration_seconds=row.duration_seconds,
                    location=row.location,
                    checksum=row.checksum,
                    message=row.message,
                )
                for row in result
            ]

    # -- leases

    async def try_acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Take (or extend) the lease ``name`` for ``owner`` unless another owner holds it."""
        now = datetime.now(UTC)
        expires_at = now + timedelta(seconds=ttl_seconds)
        # Taking over an expired lease or extending our own: PostgreSQL re-checks the WHERE on
        # the locked row, so two replicas racing for an expired lease cannot both win.
        take = (
            update(leases)
            .where(leases.c.name == name)
            .where((leases.c.expires_at < now) | (leases.c.owner == owner))
            .values(owner=owner, expires_at=expires_at)
        )
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        create = (
            dialect_insert(leases)
            .values(name=name, owner=owner, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        async with self.engine.begin() as conn:
            if (await conn.execute(take)).rowcount == 1:
                return True
        async with self.engine.begin() as conn:
            if (await conn.execute(create)).rowcount == 1:
                return True
        # Someone created the row between our two statements; it may be ourselves.
        async with self.engine.begin() as conn:
            return bool((await conn.execute(take)).rowcount == 1)

    async def renew_lease(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Extend a lease we hold; False when it expired and someone else took it."""
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(leases)
                .where(leases.c.name == name, leases.c.owner == owner)
                .values(expires_at=expires_at)
            )
            return result.rowcount == 1

    async def release_lease(self, name: str, owner: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(leases).where(leases.c.name == name, leases.c.owner == owner))

    async def lease_owner(self, name: str) -> str | None:
        """The current holder of an unexpired lease."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(leases.c.owner).where(
                        leases.c.name == name, leases.c.expires_at >= datetime.now(UTC)
                    )
                )
            ).first()
            return None if row is None else str(row.owner)

    # -- restore drills

    async def start_drill_run(
        self, run_id: str, drill: str, started_at: datetime, owner: str
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(drill_runs).values(
                    run_id=run_id,
                    drill=drill,
                    owner=owner,
                    status="running",
                    started_at=started_at,
                )
            )

    async def claim_drill_slot(
        self, run_id: str, drill: str, slot: datetime, started_at: datetime, owner: str
    ) -> bool:
        """Record a scheduled run for ``slot``; False when some process recorded it already."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(drill_runs).values(
                        run_id=run_id,
                        drill=drill,
                        owner=owner,
                        status="running",
                        started_at=started_at,
                        slot=slot,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def finish_drill_run(self, run_id: str, report: dict[str, Any]) -> None:
        finished_at = parse_timestamp(report.get("finished_at"))
        async with self.engine.begin() as conn:
            await conn.execute(
                update(drill_runs)
                .where(drill_runs.c.run_id == run_id)
                .values(
                    status=str(report.get("status", "fail")),
                    finished_at=finished_at or datetime.now(UTC),
                    report=json.dumps(report, default=str),
                )
            )

    async def drill_runs(self, drill: str, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first; ``report`` decoded."""
        query = (
            select(drill_runs)
            .where(drill_runs.c.drill == drill)
            .order_by(drill_runs.c.started_at.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_drill_row(row._mapping) for row in rows]

    async def last_drill_run(self, drill: str, *, finished: bool = True) -> dict[str, Any] | None:
        query = select(drill_runs).where(drill_runs.c.drill == drill)
        if finished:
            query = query.where(drill_runs.c.status != "running")
        query = query.order_by(drill_runs.c.started_at.desc()).limit(1)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _drill_row(row._mapping)

    async def last_successful_drill_run(self, drill: str) -> dict[str, Any] | None:
        query = (
            select(drill_runs)
            .where(drill_runs.c.drill == drill, drill_runs.c.status == "pass")
            .order_by(drill_runs.c.started_at.desc())
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _drill_row(row._mapping)

    # -- ad hoc maintenance windows

    async def start_maintenance(self, record: MaintenanceRecord) -> bool:
        """Store a new ad hoc window; False (nothing stored) while one of that name is open."""
        is_open = select(maintenance_windows.c.id).where(
            maintenance_windows.c.name == record.name,
            maintenance_windows.c.ends_at > record.starts_at,
        )
        async with self.engine.begin() as conn:
            if (await conn.execute(is_open.limit(1))).first() is not None:
                return False
            await conn.execute(
                insert(maintenance_windows).values(
                    name=record.name,
                    checks=None if record.checks is None else json.dumps(list(record.checks)),
                    starts_at=record.starts_at,
                    ends_at=record.ends_at,
                    planned_ends_at=record.planned_ends_at or record.ends_at,
                    reason=record.reason,
                    failover=record.failover,
                    created_by=record.created_by,
                )
            )
        return True

    async def end_maintenance(self, name: str, at: datetime) -> list[MaintenanceRecord]:
        """End the open ad hoc windows called ``name`` at ``at``: the windows ended."""
        still_open = (
            maintenance_windows.c.name == name,
            maintenance_windows.c.starts_at <= at,
            maintenance_windows.c.ends_at > at,
        )
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(maintenance_windows).where(*still_open))).all()
            if rows:
                ids = [row.id for row in rows]
                await conn.execute(
                    update(maintenance_windows)
                    .where(maintenance_windows.c.id.in_(ids))
                    .values(ends_at=at)
                )
        return [replace(_maintenance_record(row), ends_at=at) for row in rows]

    async def maintenance_windows(self, *, ending_after: datetime) -> list[MaintenanceRecord]:
        """The ad hoc windows that end after ``ending_after`` (open, upcoming and recent ones),
        by start."""
        query = (
            select(maintenance_windows)
            .where(maintenance_windows.c.ends_at > ending_after)
            .order_by(maintenance_windows.c.starts_at, maintenance_windows.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_maintenance_record(row) for row in rows]


def _maintenance_record(row: Any) -> MaintenanceRecord:
    return MaintenanceRecord(
        name=row.name,
        checks=None if row.checks is None else tuple(json.loads(row.checks)),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        reason=row.reason,
        failover=bool(row.failover),
        created_by=row.created_by,
        planned_ends_at=row.planned_ends_at,
    )


async def _all(conn: AsyncConnection, query: Any) -> list[Any]:
    return list((await conn.execute(query)).all())


def _drill_row(mapping: Any) -> dict[str, Any]:
    row = dict(mapping)
    report = row.pop("report", None)
    row["report"] = json.loads(report) if report else None
    return row
