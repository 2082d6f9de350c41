"""Plans (SPEC 21): `plans` (a price a week or a month for an allowance, zh and en names, retired
or not), `subscriptions` (at most one active or cancelled per person and plan: a partial unique
index) and `subscription_periods` (each period sold: its price and allowance then, and its charge);
a `plan` ledger entry names the period whose allowance it grants (`subscription_period_id`, unique);
and the event types `subscription.renewed` and `subscription.lapsed`.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-08 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = (
    "('topup.succeeded', 'balance.low', 'hold.expired', 'refund.succeeded', 'refund.failed', "
    "'redemption.redeemed', 'balance.adjusted', 'credit.expiring', 'credit.expired', 'limit.reached'{})"
)
MONEY = sa.Numeric(precision=18, scale=4)


def _events(more: str) -> None:
    op.drop_constraint(op.f("ck_events_type_known"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_type_known"), "events", f"type IN {EVENTS.format(more)}")


def _created_updated() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name_zh", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("allowance", MONEY, nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        *_created_updated(),
        sa.CheckConstraint("code ~ '^[a-z0-9-]{2,32}$'", name=op.f("ck_plans_code_shape")),
        sa.CheckConstraint("period IN ('week', 'month')", name=op.f("ck_plans_period_known")),
        sa.CheckConstraint("price > 0 AND price = round(price, 2)", name=op.f("ck_plans_price_cents")),
        sa.CheckConstraint("allowance > 0 AND allowance = round(allowance, 2)", name=op.f("ck_plans_allowance_cents")),
        sa.CheckConstraint("active = (retired_at IS NULL)", name=op.f("ck_plans_retired_with_time")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("code", name=op.f("uq_plans_code")),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("periods", sa.Integer(), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lapse_reason", sa.String(length=32), nullable=True),
        sa.Column("lapsed_at", sa.DateTime(timezone=True), nullable=True),
        *_created_updated(),
        sa.CheckConstraint("status IN ('active', 'cancelled', 'lapsed')", name=op.f("ck_subscriptions_status_known")),
        sa.CheckConstraint("auto_renew = (status = 'active')", name=op.f("ck_subscriptions_renews_while_active")),
        sa.CheckConstraint(
            "(status = 'lapsed') = (lapse_reason IS NOT NULL)", name=op.f("ck_subscriptions_lapsed_with_reason")
        ),
        sa.CheckConstraint(
            "(status = 'lapsed') = (lapsed_at IS NOT NULL)", name=op.f("ck_subscriptions_lapsed_with_time")
        ),
        sa.CheckConstraint(
            "lapse_reason IS NULL OR lapse_reason IN ('cancelled', 'insufficient_balance', 'plan_retired', "
            "'account_disabled', 'spending_limit_reached')",
            name=op.f("ck_subscriptions_lapse_reason_known"),
        ),
        sa.CheckConstraint(
            "status <> 'cancelled' OR cancelled_at IS NOT NULL", name=op.f("ck_subscriptions_cancelled_with_time")
        ),
        sa.CheckConstraint("current_period_end > current_period_start", name=op.f("ck_subscriptions_period_forward")),
        sa.CheckConstraint("current_period_start >= started_at", name=op.f("ck_subscriptions_period_after_start")),
        sa.CheckConstraint("periods >= 1", name=op.f("ck_subscriptions_periods_positive")),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_subscriptions_plan_id_plans"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_subscriptions_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(
        "uq_subscriptions_user_id_plan_id_held",
        "subscriptions",
        ["user_id", "plan_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('active', 'cancelled')"),
    )
    op.create_index(
        "ix_subscriptions_due",
        "subscriptions",
        ["current_period_end"],
        postgresql_where=sa.text("status IN ('active', 'cancelled')"),
    )
    op.create_index("ix_subscriptions_user_id_created_at", "subscriptions", ["user_id", "created_at"])
    op.create_table(
        "subscription_periods",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("allowance", MONEY, nullable=False),
        sa.Column("usage_log_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("n >= 1", name=op.f("ck_subscription_periods_n_positive")),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_subscription_periods_forward")),
        sa.CheckConstraint("price > 0 AND allowance > 0", name=op.f("ck_subscription_periods_amounts_positive")),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_periods_subscription_id_subscriptions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["usage_log_id"],
            ["usage_logs.id"],
            name=op.f("fk_subscription_periods_usage_log_id_usage_logs"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_periods")),
        sa.UniqueConstraint("subscription_id", "n", name=op.f("uq_subscription_periods_subscription_id_n")),
        sa.UniqueConstraint("usage_log_id", name=op.f("uq_subscription_periods_usage_log_id")),
    )
    op.add_column("ledger_entries", sa.Column("subscription_period_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_ledger_entries_subscription_period_id_subscription_periods"),
        "ledger_entries",
        "subscription_periods",
        ["subscription_period_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_unique_constraint(
        op.f("uq_ledger_entries_subscription_period_id"), "ledger_entries", ["subscription_period_id"]
    )
    # Only plan money names a period (plan money may also come without one: a test's, a correction).
    op.create_check_constraint(
        op.f("ck_ledger_entries_period_only_on_plan"),
        "ledger_entries",
        "kind = 'plan' OR subscription_period_id IS NULL",
    )
    op.create_check_constraint(
        op.f("ck_ledger_entries_plan_is_credit"), "ledger_entries", "kind <> 'plan' OR amount > 0"
    )
    _events(", 'subscription.renewed', 'subscription.lapsed'")


def downgrade() -> None:
    op.execute("DELETE FROM events WHERE type IN ('subscription.renewed', 'subscription.lapsed')")
    _events("")
    op.drop_constraint(op.f("ck_ledger_entries_plan_is_credit"), "ledger_entries", type_="check")
    op.drop_constraint(op.f("ck_ledger_entries_period_only_on_plan"), "ledger_entries", type_="check")
    op.drop_constraint(op.f("uq_ledger_entries_subscription_period_id"), "ledger_entries", type_="unique")
    op.drop_constraint(
        op.f("fk_ledger_entries_subscription_period_id_subscription_periods"), "ledger_entries", type_="foreignkey"
    )
    # The plan entries stay (with their lots and the charges that bought them), as plain `plan` credits.
    op.drop_column("ledger_entries", "subscription_period_id")
    op.drop_table("subscription_periods")
    op.drop_index("ix_subscriptions_user_id_created_at", table_name="subscriptions")
    op.drop_index("ix_subscriptions_due", table_name="subscriptions")
    op.drop_index("uq_subscriptions_user_id_plan_id_held", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_table("plans")
