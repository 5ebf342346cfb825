"""Ad hoc maintenance windows, shared by every replica.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.store.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("checks", sa.Text, nullable=True),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("planned_ends_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("failover", sa.Boolean, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_index("ix_maintenance_windows_ends_at", "maintenance_windows", ["ends_at"])
    op.create_index(
        "ix_maintenance_windows_name_ends_at", "maintenance_windows", ["name", "ends_at"]
    )


def downgrade() -> None:
    op.drop_table("maintenance_windows")
