"""Usernames unique whatever their case: a unique index on lower(username).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 12:29:50.803775
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("uq_users_username"), "users", type_="unique")
    op.create_index("uq_users_username_lower", "users", [sa.literal_column("lower(username)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_username_lower", table_name="users")
    op.create_unique_constraint(op.f("uq_users_username"), "users", ["username"])
