"""Events to the SaaS (an outbox, SPEC 16), a person's own low-balance threshold, and the request id
on audit rows (SPEC 18).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 03:13:39.367077
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "type",
            sa.String(length=32),
            nullable=False,
        ),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column(
            "data", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column(
            "status",
            sa.String(length=16),
            server_default=sa.text("'pending'"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("give_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(status = 'delivered') = (delivered_at IS NOT NULL)", name=op.f("ck_events_delivered_iff_delivered_at")
        ),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'abandoned')", name=op.f("ck_events_status_known")),
        sa.CheckConstraint(
            "type IN ('topup.succeeded', 'balance.low', 'hold.expired', 'refund.succeeded', 'refund.failed', "
            "'redemption.redeemed', 'balance.adjusted')",
            name=op.f("ck_events_type_known"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_events_attempts_not_negative")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_events_user_id_users"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_created_at", "events", ["created_at"], unique=False)
    op.create_index(
        "ix_events_pending_next_attempt_at",
        "events",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(op.f("ix_events_user_id"), "events", ["user_id"], unique=False)
    op.add_column("audit_logs", sa.Column("request_id", sa.String(length=128), nullable=True))
    op.add_column("users", sa.Column("low_balance_threshold", sa.Numeric(precision=18, scale=4), nullable=True))
    op.create_check_constraint(
        op.f("ck_users_low_balance_threshold_cents"),
        "users",
        "low_balance_threshold >= 0 AND low_balance_threshold = round(low_balance_threshold, 2)",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_users_low_balance_threshold_cents"), "users", type_="check")
    op.drop_column("users", "low_balance_threshold")
    op.drop_column("audit_logs", "request_id")
    op.drop_index(op.f("ix_events_user_id"), table_name="events")
    op.drop_index(
        "ix_events_pending_next_attempt_at", table_name="events", postgresql_where=sa.text("status = 'pending'")
    )
    op.drop_index("ix_events_created_at", table_name="events")
    op.drop_table("events")
