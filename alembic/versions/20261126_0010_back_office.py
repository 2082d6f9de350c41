"""The back office (SPEC 13-15): refunds, redemption codes in batches, disabled people, and ledger
entries that name a refund or a code.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 02:43:26.017971
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


KINDS_BEFORE = "kind IN ('topup', 'usage', 'invite_reward', 'adjustment', 'refund')"
KINDS_WITH_REDEMPTION = "kind IN ('topup', 'usage', 'invite_reward', 'adjustment', 'refund', 'redemption')"
LEDGER_CHECKS = {
    "refund_has_refund": "(kind = 'refund') = (refund_id IS NOT NULL)",
    "refund_is_debit": "kind <> 'refund' OR amount < 0",
    "redemption_has_code": "(kind = 'redemption') = (redemption_code IS NOT NULL)",
    "redemption_is_credit": "kind <> 'redemption' OR amount > 0",
}


def _replace_kind_checks(kinds: str) -> None:
    op.drop_constraint(op.f("ck_ledger_entries_kind_known"), "ledger_entries", type_="check")
    op.create_check_constraint(op.f("ck_ledger_entries_kind_known"), "ledger_entries", kinds)


def upgrade() -> None:
    op.create_table(
        "code_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "amount > 0 AND amount = round(amount, 2)", name=op.f("ck_code_batches_amount_positive_cents")
        ),
        sa.CheckConstraint("count BETWEEN 1 AND 10000", name=op.f("ck_code_batches_count_range")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_code_batches_created_by_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_batches")),
    )
    op.create_table(
        "redemption_codes",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("redeemed_by", sa.Uuid(), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("code ~ '^[A-HJ-NP-Z2-9]{16}$'", name=op.f("ck_redemption_codes_code_alphabet")),
        sa.CheckConstraint(
            "(redeemed_by IS NULL) = (redeemed_at IS NULL)", name=op.f("ck_redemption_codes_redeemed_together")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_redemption_codes_amount_positive")),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["code_batches.id"],
            name=op.f("fk_redemption_codes_batch_id_code_batches"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_redemption_codes_created_by_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["redeemed_by"], ["users.id"], name=op.f("fk_redemption_codes_redeemed_by_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_redemption_codes")),
    )
    op.create_index("ix_redemption_codes_batch_id", "redemption_codes", ["batch_id"], unique=False)
    op.create_index(
        "ix_redemption_codes_redeemed_by",
        "redemption_codes",
        ["redeemed_by"],
        unique=False,
        postgresql_where=sa.text("redeemed_by IS NOT NULL"),
    )
    op.create_table(
        "refunds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payment_transaction_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("admin_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "gateway_answer",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(status = 'pending') = (settled_at IS NULL)", name=op.f("ck_refunds_settled_iff_not_pending")
        ),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f("ck_refunds_status_known")),
        sa.CheckConstraint("amount > 0 AND amount = round(amount, 2)", name=op.f("ck_refunds_amount_positive_cents")),
        sa.ForeignKeyConstraint(
            ["admin_id"], ["users.id"], name=op.f("fk_refunds_admin_id_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["payment_transaction_id"],
            ["payment_transactions.id"],
            name=op.f("fk_refunds_payment_transaction_id_payment_transactions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_refunds_user_id_users"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
    )
    op.create_index(
        "ix_refunds_payment_transaction_id_created_at",
        "refunds",
        ["payment_transaction_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_refunds_pending", "refunds", ["created_at"], unique=False, postgresql_where=sa.text("status = 'pending'")
    )
    op.add_column("ledger_entries", sa.Column("refund_id", sa.Uuid(), nullable=True))
    op.add_column("ledger_entries", sa.Column("redemption_code", sa.String(length=16), nullable=True))
    op.create_unique_constraint(op.f("uq_ledger_entries_redemption_code"), "ledger_entries", ["redemption_code"])
    op.create_unique_constraint(op.f("uq_ledger_entries_refund_id"), "ledger_entries", ["refund_id"])
    op.create_foreign_key(
        op.f("fk_ledger_entries_redemption_code_redemption_codes"),
        "ledger_entries",
        "redemption_codes",
        ["redemption_code"],
        ["code"],
        ondelete="RESTRICT",
    )
    op.create_foreign_key(
        op.f("fk_ledger_entries_refund_id_refunds"),
        "ledger_entries",
        "refunds",
        ["refund_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    _replace_kind_checks(KINDS_WITH_REDEMPTION)
    for name, check in LEDGER_CHECKS.items():
        op.create_check_constraint(op.f(f"ck_ledger_entries_{name}"), "ledger_entries", check)


def downgrade() -> None:
    for name in LEDGER_CHECKS:
        op.drop_constraint(op.f(f"ck_ledger_entries_{name}"), "ledger_entries", type_="check")
    _replace_kind_checks(KINDS_BEFORE)
    op.drop_column("users", "disabled_at")
    op.drop_constraint(op.f("fk_ledger_entries_refund_id_refunds"), "ledger_entries", type_="foreignkey")
    op.drop_constraint(op.f("fk_ledger_entries_redemption_code_redemption_codes"), "ledger_entries", type_="foreignkey")
    op.drop_constraint(op.f("uq_ledger_entries_refund_id"), "ledger_entries", type_="unique")
    op.drop_constraint(op.f("uq_ledger_entries_redemption_code"), "ledger_entries", type_="unique")
    op.drop_column("ledger_entries", "redemption_code")
    op.drop_column("ledger_entries", "refund_id")
    op.drop_index("ix_refunds_pending", table_name="refunds", postgresql_where=sa.text("status = 'pending'"))
    op.drop_index("ix_refunds_payment_transaction_id_created_at", table_name="refunds")
    op.drop_table("refunds")
    op.drop_index(
        "ix_redemption_codes_redeemed_by",
        table_name="redemption_codes",
        postgresql_where=sa.text("redeemed_by IS NOT NULL"),
    )
    op.drop_index("ix_redemption_codes_batch_id", table_name="redemption_codes")
    op.drop_table("redemption_codes")
    op.drop_table("code_batches")
