"""History every replica shares: first_failure_at, verdict transitions, coverage, recovery points,
and the slot of scheduled drill runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.store.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("check_transitions", sa.Column("first_failure_at", UTCDateTime(), nullable=True))
    op.create_index("ix_check_transitions_at", "check_transitions", ["at"])
    op.create_table(
        "verdict_transitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service_id", sa.String(255), nullable=False),
        sa.Column("from_status", sa.String(8), nullable=True),
        sa.Column("to_status", sa.String(8), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_verdict_transitions_at", "verdict_transitions", ["at"])
    op.create_table(
        "coverage",
        sa.Column("span_id", sa.String(64), primary_key=True),
        sa.Column("service_id", sa.String(255), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=False),
        sa.Column("closed", sa.Boolean, nullable=False),
    )
    op.create_index("ix_coverage_ended_at", "coverage", ["ended_at"])
    op.create_table(
        "recovery_points",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(63), nullable=False),
        sa.Column("backup_at", UTCDateTime(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=True),
        sa.Column("verified", sa.Boolean, nullable=True),
        sa.Column("location", sa.Text, nullable=True),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("service_id", sa.String(255), nullable=False),
    )
    op.create_index(
        "uq_recovery_points_source_backup_at",
        "recovery_points",
        ["source", "backup_at"],
        unique=True,
    )
    op.add_column("drill_runs", sa.Column("slot", UTCDateTime(), nullable=True))
    # A unique index rather than a constraint: SQLite cannot add a constraint to a table in place,
    # and NULL slots (runs started by hand) never collide in either database.
    op.create_index("uq_drill_runs_drill_slot", "drill_runs", ["drill", "slot"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_drill_runs_drill_slot", "drill_runs")
    with op.batch_alter_table("drill_runs") as batch:
        batch.drop_column("slot")
    op.drop_table("recovery_points")
    op.drop_table("coverage")
    op.drop_table("verdict_transitions")
    op.drop_index("ix_check_transitions_at", "check_transitions")
    with op.batch_alter_table("check_transitions") as batch:
        batch.drop_column("first_failure_at")
