"""Refused XorPay notifies counted per source address, reason and minute (SPEC 19), instead of an
audit row each: forged posts can no longer grow a table without bound, and the count is what the
per-address limit on refusals reads.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 04:51:37.675952
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notify_refusals",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "sample", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.CheckConstraint("count > 0", name=op.f("ck_notify_refusals_count_positive")),
        sa.PrimaryKeyConstraint("minute", "source", "reason", name=op.f("pk_notify_refusals")),
    )
    op.create_index("ix_notify_refusals_source_minute", "notify_refusals", ["source", "minute"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_notify_refusals_source_minute", table_name="notify_refusals")
    op.drop_table("notify_refusals")
