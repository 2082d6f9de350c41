"""Holds: money set aside for long jobs (SPEC 11), and billing_accounts.held within the balance.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 01:28:32.973010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'active'"), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column(
            "params", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("captured_amount", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("usage_log_id", sa.Uuid(), nullable=True),
        sa.Column("settled_balance", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("settled_available", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.CheckConstraint("(status = 'active') = (settled_at IS NULL)", name=op.f("ck_holds_settled_iff_not_active")),
        sa.CheckConstraint(
            "(status = 'captured') = (captured_amount IS NOT NULL)", name=op.f("ck_holds_captured_has_amount")
        ),
        sa.CheckConstraint(
            "(status = 'captured') = (usage_log_id IS NOT NULL)", name=op.f("ck_holds_captured_has_usage")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'captured', 'released', 'expired')", name=op.f("ck_holds_status_known")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_holds_amount_positive")),
        sa.CheckConstraint(
            "captured_amount > 0 AND captured_amount <= amount", name=op.f("ck_holds_captured_within_amount")
        ),
        sa.CheckConstraint("expires_at > created_at", name=op.f("ck_holds_expires_after_creation")),
        sa.ForeignKeyConstraint(
            ["usage_log_id"], ["usage_logs.id"], name=op.f("fk_holds_usage_log_id_usage_logs"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_holds_user_id_users"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
        sa.UniqueConstraint("usage_log_id", name=op.f("uq_holds_usage_log_id")),
        sa.UniqueConstraint("user_id", "request_id", name=op.f("uq_holds_user_id_request_id")),
    )
    op.create_index(
        "ix_holds_active_expires_at",
        "holds",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index("ix_holds_user_id_created_at", "holds", ["user_id", "created_at"], unique=False)
    op.add_column(
        "billing_accounts",
        sa.Column("held", sa.Numeric(precision=18, scale=4), server_default=sa.text("0"), nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_billing_accounts_held_within_balance"), "billing_accounts", "held >= 0 AND held <= balance"
    )


def downgrade() -> None:
    op.drop_column("billing_accounts", "held")  # its check constraint goes with it
    op.drop_index("ix_holds_user_id_created_at", table_name="holds")
    op.drop_index("ix_holds_active_expires_at", table_name="holds", postgresql_where=sa.text("status = 'active'"))
    op.drop_table("holds")
