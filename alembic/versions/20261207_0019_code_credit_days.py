"""A code batch's `credit_days` (SPEC 20: `codes create --credit-days N`): the credit of its codes
expires N days of 24 hours after each redemption. Null (every batch made before): the site's
GRANT_EXPIRY_DAYS, as for any gift.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 23:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("code_batches", sa.Column("credit_days", sa.SmallInteger(), nullable=True))
    op.create_check_constraint(
        op.f("ck_code_batches_credit_days_range"), "code_batches", "credit_days BETWEEN 1 AND 3650"
    )


def downgrade() -> None:
    op.drop_column("code_batches", "credit_days")
