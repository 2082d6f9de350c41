"""A covering index for usage reports: (user_id, created_at, id) INCLUDE (amount, model).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 12:23:37.666132
"""

from collections.abc import Sequence

from alembic import op


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The new index first, so that reports stay served; on a large live table, build it beforehand
    # with CREATE INDEX CONCURRENTLY and this revision finds it (IF NOT EXISTS).
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_usage_logs_user_id_created_at_id "
        "ON usage_logs (user_id, created_at, id) INCLUDE (amount, model)"
    )
    op.drop_index(op.f("ix_usage_logs_user_id_created_at"), table_name="usage_logs")


def downgrade() -> None:
    op.create_index(op.f("ix_usage_logs_user_id_created_at"), "usage_logs", ["user_id", "created_at"], unique=False)
    op.drop_index("ix_usage_logs_user_id_created_at_id", table_name="usage_logs")
