"""Initial state store: transitions, heartbeat events, drill runs, leases.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.store.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "check_transitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("check_name", sa.String(63), nullable=False),
        sa.Column("from_status", sa.String(8), nullable=True),
        sa.Column("to_status", sa.String(8), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("service_id", sa.String(255), nullable=False),
    )
    op.create_index("ix_check_transitions_check_name_at", "check_transitions", ["check_name", "at"])
    op.create_table(
        "heartbeat_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=True),
        sa.Column("duration_seconds", sa.Float, nullable=True),
        sa.Column("location", sa.Text, nullable=True),
        sa.Column("checksum", sa.String(255), nullable=True),
        sa.Column("message", sa.Text, nullable=True),
    )
    op.create_index("ix_heartbeat_events_source_at", "heartbeat_events", ["source", "at"])
    op.create_table(
        "drill_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("drill", sa.String(63), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("report", sa.Text, nullable=True),
    )
    op.create_index("ix_drill_runs_drill_started_at", "drill_runs", ["drill", "started_at"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("drill_runs")
    op.drop_table("heartbeat_events")
    op.drop_table("check_transitions")
