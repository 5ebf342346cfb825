"""The state store's tables (SQLAlchemy Core). Migrations in alembic/ create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which stores naive text) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("the state store only takes timezone-aware datetimes")
        utc: datetime = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
    }
)

# Every effective state change of a check: the raw material for incidents, uptime and MTTR.
check_transitions = Table(
    "check_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("check_name", String(63), nullable=False),
    Column("from_status", String(8), nullable=True),  # NULL: the first result after start-up
    Column("to_status", String(8), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("output", Text, nullable=False),
    Column("service_id", String(255), nullable=False),
    # To a fail: the first failing run of the streak, so time to detect is measured.
    Column("first_failure_at", UTCDateTime(), nullable=True),
    Index("ix_check_transitions_check_name_at", "check_name", "at"),
    Index("ix_check_transitions_at", "at"),
)

# Every change of the overall verdict (pass | warn | fail) of each replica. The first row of a
# coverage span has from_status NULL: the verdict once the first round of critical checks is in.
verdict_transitions = Table(
    "verdict_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(255), nullable=False),
    Column("from_status", String(8), nullable=True),
    Column("to_status", String(8), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_verdict_transitions_at", "at"),
)

# Per replica, the spans during which drwatch ran and probed: a row per process, extended every
# minute and closed on a clean shutdown. Time outside every span is no data, never uptime.
coverage = Table(
    "coverage",
    metadata,
    Column("span_id", String(64), primary_key=True),
    Column("service_id", String(255), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=False),
    Column("closed", Boolean, nullable=False),
    Index("ix_coverage_ended_at", "ended_at"),
)

# Every distinct backup a backup source has seen: the raw material of RPO achievement.
recovery_points = Table(
    "recovery_points",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(63), nullable=False),
    Column("backup_at", UTCDateTime(), nullable=False),
    Column("size_bytes", BigInteger, nullable=True),
    Column("verified", Boolean, nullable=True),
    Column("location", Text, nullable=True),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("service_id", String(255), nullable=False),
    Index("uq_recovery_points_source_backup_at", "source", "backup_at", unique=True),
)

# Push heartbeats from backup jobs (POST /api/backups/{name}/ping|start|fail).
heartbeat_events = Table(
    "heartbeat_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(63), nullable=False),
    Column("kind", String(8), nullable=False),  # start | success | fail
    Column("at", UTCDateTime(), nullable=False),
    Column("size_bytes", BigInteger, nullable=True),
    Column("duration_seconds", Float, nullable=True),
    Column("location", Text, nullable=True),
    Column("checksum", String(255), nullable=True),
    Column("message", Text, nullable=True),
    Index("ix_heartbeat_events_source_at", "source", "at"),
)

# One row per restore drill run; `report` is the JSON of the finished run.
drill_runs = Table(
    "drill_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("drill", String(63), nullable=False),
    Column("owner", String(255), nullable=False),
    Column("status", String(16), nullable=False),  # running | pass | fail
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("report", Text, nullable=True),
    # The scheduled time of a cron run (NULL for runs started by hand): unique with the drill,
    # so a slot runs once across replicas even when one of them pauses past it.
    Column("slot", UTCDateTime(), nullable=True),
    Index("ix_drill_runs_drill_started_at", "drill", "started_at"),
    Index("uq_drill_runs_drill_slot", "drill", "slot", unique=True),
)

# Leases make singleton work (drills, heartbeat evaluation) run on one replica at a time.
leases = Table(
    "leases",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

# Ad hoc maintenance windows (POST /api/maintenance, `drwatch maintenance start`), shared by every
# replica. Ending one early moves ends_at; rows are kept, since the SLO excludes past windows too.
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(63), nullable=False),
    Column("checks", Text, nullable=True),  # JSON list of names or patterns; NULL: every check
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("planned_ends_at", UTCDateTime(), nullable=False),
    Column("reason", Text, nullable=False),
    Column("failover", Boolean, nullable=False),
    Column("created_by", String(255), nullable=False),
    Index("ix_maintenance_windows_ends_at", "ends_at"),
    Index("ix_maintenance_windows_name_ends_at", "name", "ends_at"),
)
