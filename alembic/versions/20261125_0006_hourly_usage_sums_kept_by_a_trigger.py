"""Hourly usage sums (per person, UTC hour, model), kept by a trigger on usage_logs, for long reports.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 13:11:23.851438
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TRIGGER_FUNCTION = """
CREATE FUNCTION usage_hourly_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM usage_hourly
         WHERE user_id = OLD.user_id AND hour = date_trunc('hour', OLD.created_at, 'UTC')
           AND model = OLD.model AND count = 1;
        IF NOT FOUND THEN
            UPDATE usage_hourly SET count = count - 1, amount = amount - OLD.amount
             WHERE user_id = OLD.user_id AND hour = date_trunc('hour', OLD.created_at, 'UTC')
               AND model = OLD.model;
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO usage_hourly (user_id, hour, model, count, amount)
        VALUES (NEW.user_id, date_trunc('hour', NEW.created_at, 'UTC'), NEW.model, 1, NEW.amount)
        ON CONFLICT (user_id, hour, model)
        DO UPDATE SET count = usage_hourly.count + 1, amount = usage_hourly.amount + EXCLUDED.amount;
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "usage_hourly",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.CheckConstraint("count > 0 AND amount > 0", name=op.f("ck_usage_hourly_positive")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_usage_hourly_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("user_id", "hour", "model", name=op.f("pk_usage_hourly")),
    )
    # Kept by the database on every write to usage_logs, whoever writes: the sums cannot drift.
    op.execute(TRIGGER_FUNCTION)
    op.execute(
        "CREATE TRIGGER usage_logs_hourly AFTER INSERT OR UPDATE OR DELETE ON usage_logs "
        "FOR EACH ROW EXECUTE FUNCTION usage_hourly_follow()"
    )
    op.execute(
        "INSERT INTO usage_hourly (user_id, hour, model, count, amount) "
        "SELECT user_id, date_trunc('hour', created_at, 'UTC'), model, count(*), sum(amount) "
        "FROM usage_logs GROUP BY 1, 2, 3"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER usage_logs_hourly ON usage_logs")
    op.execute("DROP FUNCTION usage_hourly_follow()")
    op.drop_table("usage_hourly")
