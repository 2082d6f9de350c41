"""`credit_lots.expired_at`: the instant a lot's expiry was written (SPEC 20). Its expiry is
written once, taking at most balance - held; what it still holds then is kept for the holds active
at that instant and expires only as they settle (a later top-up no longer lets it go early). Lots
already past their expiry with an expiry written get their `expires_at`.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-08 00:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("credit_lots", sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE credit_lots l SET expired_at = l.expires_at WHERE l.expires_at <= now() AND EXISTS ("
        " SELECT 1 FROM lot_draws d JOIN ledger_entries e ON e.id = d.ledger_entry_id"
        " WHERE d.lot_id = l.id AND e.kind = 'expiry')"
    )


def downgrade() -> None:
    op.drop_column("credit_lots", "expired_at")
