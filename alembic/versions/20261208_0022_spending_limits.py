"""Spending limits (SPEC 22): `spending_limits`, one per person, period (day or month, in their
time zone) and setter (the person or an admin; the lower applies), with the period whose
limit.reached event was sent; and the event type `limit.reached`.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-08 03:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = (
    "('topup.succeeded', 'balance.low', 'hold.expired', 'refund.succeeded', 'refund.failed', "
    "'redemption.redeemed', 'balance.adjusted', 'credit.expiring', 'credit.expired'{})"
)


def _events(more: str) -> None:
    op.drop_constraint(op.f("ck_events_type_known"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_type_known"), "events", f"type IN {EVENTS.format(more)}")


def upgrade() -> None:
    op.create_table(
        "spending_limits",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("set_by", sa.String(length=8), nullable=False),
        sa.Column("reached_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("period IN ('day', 'month')", name=op.f("ck_spending_limits_period_known")),
        sa.CheckConstraint("set_by IN ('person', 'admin')", name=op.f("ck_spending_limits_set_by_known")),
        sa.CheckConstraint("amount >= 0 AND amount = round(amount, 2)", name=op.f("ck_spending_limits_amount_cents")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_spending_limits_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spending_limits")),
        sa.UniqueConstraint("user_id", "period", "set_by", name=op.f("uq_spending_limits_user_id_period_set_by")),
    )
    _events(", 'limit.reached'")


def downgrade() -> None:
    op.execute("DELETE FROM events WHERE type = 'limit.reached'")
    _events("")
    op.drop_table("spending_limits")
