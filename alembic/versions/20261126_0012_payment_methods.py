"""Payment methods (issue 13): a top-up is paid with Alipay or WeChat Pay (XorPay's `native`); the
order's pay_type may hold only those, and is Alipay unless said otherwise.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 03:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("payment_transactions", "pay_type", server_default=sa.text("'alipay'"))
    op.create_check_constraint(
        op.f("ck_payment_transactions_pay_type_known"), "payment_transactions", "pay_type IN ('alipay', 'native')"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_payment_transactions_pay_type_known"), "payment_transactions", type_="check")
    op.alter_column("payment_transactions", "pay_type", server_default=None)
