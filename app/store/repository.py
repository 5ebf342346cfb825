"""Every query of the state store lives here; the rest of drwatch calls these named methods.

The store is a convenience for history (transitions, heartbeat events, drill runs) and the
coordination of replicas (leases). Probing and ``/health`` never wait for it: the service writes
transitions through :class:`StoreWriter`, which retries in the background while the store is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from app import redact
from app.store.db import create_engine
from app.store.tables import (
    check_transitions,
    drill_runs,
    heartbeat_events,
    leases,
    maintenance_windows,
)
from app.units import parse_timestamp

log = logging.getLogger("drwatch.store")


@dataclass(frozen=True, slots=True)
class Transition:
    """An effective state change of one check."""

    check_name: str
    from_status: str | None
    to_status: str
    at: datetime
    output: str


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
            }
            for t in transitions
        ]
        async with self.engine.begin() as conn:
            await conn.execute(insert(check_transitions), rows)

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


def _drill_row(mapping: Any) -> dict[str, Any]:
    row = dict(mapping)
    report = row.pop("report", None)
    row["report"] = json.loads(report) if report else None
    return row


class StoreWriter:
    """Writes to the store in the background, retrying with backoff while it is down.

    Callers never wait: ``submit()`` queues the write. The queue is bounded; when the store has
    been down so long that it fills, the oldest writes are dropped and counted, so memory stays
    flat and the newest history survives.
    """

    def __init__(self, *, max_pending: int = 10_000, retry_max: float = 60.0) -> None:
        self._queue: deque[tuple[str, Callable[[], Awaitable[None]]]] = deque()
        self._max_pending = max_pending
        self._retry_max = retry_max
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.healthy = True
        self.failures_total = 0
        self.dropped_total = 0
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="drwatch-store-writer")

    def submit(self, what: str, write: Callable[[], Awaitable[None]]) -> None:
        if len(self._queue) >= self._max_pending:
            self._queue.popleft()
            self.dropped_total += 1
        self._queue.append((what, write))
        self._wakeup.set()

    async def _loop(self) -> None:
        delay = 0.5
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            what, write = self._queue[0]
            try:
                await write()
            except Exception as exc:
                self.failures_total += 1
                self.last_error = redact.scrub(f"{type(exc).__name__}: {exc}")[:500]
                if self.healthy:
                    log.error(
                        "state store write failed; retrying in the background",
                        extra={"write": what, "error": self.last_error, "pending": self.pending},
                    )
                self.healthy = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            if self._queue and self._queue[0][1] is write:
                self._queue.popleft()
            if not self.healthy:
                log.warning("state store writes recovered", extra={"pending": self.pending})
            self.healthy = True
            delay = 0.5

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until the queue is empty; used at shut-down and in tests."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._queue and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
