"""Payment transactions (top-up orders) and the ledger entry that credits each.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:00:44.170295
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_transactions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("provider", sa.String(length=16), server_default=sa.text("'xorpay'"), nullable=False),
        sa.Column("pay_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("provider_order_id", sa.String(length=64), nullable=True),
        sa.Column(
            "metadata", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(status = 'succeeded') = (paid_at IS NOT NULL)", name=op.f("ck_payment_transactions_paid_at_iff_succeeded")
        ),
        sa.CheckConstraint("provider = 'xorpay'", name=op.f("ck_payment_transactions_provider_known")),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed', 'expired')", name=op.f("ck_payment_transactions_status_known")
        ),
        sa.CheckConstraint(
            "amount > 0 AND amount = round(amount, 2)", name=op.f("ck_payment_transactions_amount_positive_cents")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_payment_transactions_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_transactions")),
        sa.UniqueConstraint("provider_order_id", name=op.f("uq_payment_transactions_provider_order_id")),
    )
    op.create_index(
        "ix_payment_transactions_pending",
        "payment_transactions",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_payment_transactions_user_id_created_at", "payment_transactions", ["user_id", "created_at"], unique=False
    )
    op.add_column("ledger_entries", sa.Column("payment_transaction_id", sa.Uuid(), nullable=True))
    op.create_unique_constraint(
        op.f("uq_ledger_entries_payment_transaction_id"), "ledger_entries", ["payment_transaction_id"]
    )
    op.create_foreign_key(
        op.f("fk_ledger_entries_payment_transaction_id_payment_transactions"),
        "ledger_entries",
        "payment_transactions",
        ["payment_transaction_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    # Autogenerate does not see CHECK constraints added to an existing table.
    op.create_check_constraint(
        op.f("ck_ledger_entries_topup_has_payment"),
        "ledger_entries",
        "(kind = 'topup') = (payment_transaction_id IS NOT NULL)",
    )
    op.create_check_constraint(
        op.f("ck_ledger_entries_topup_is_credit"), "ledger_entries", "kind <> 'topup' OR amount > 0"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_ledger_entries_topup_is_credit"), "ledger_entries", type_="check")
    op.drop_constraint(op.f("ck_ledger_entries_topup_has_payment"), "ledger_entries", type_="check")
    op.drop_constraint(
        op.f("fk_ledger_entries_payment_transaction_id_payment_transactions"), "ledger_entries", type_="foreignkey"
    )
    op.drop_constraint(op.f("uq_ledger_entries_payment_transaction_id"), "ledger_entries", type_="unique")
    op.drop_column("ledger_entries", "payment_transaction_id")
    op.drop_index("ix_payment_transactions_user_id_created_at", table_name="payment_transactions")
    op.drop_index(
        "ix_payment_transactions_pending",
        table_name="payment_transactions",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("payment_transactions")
