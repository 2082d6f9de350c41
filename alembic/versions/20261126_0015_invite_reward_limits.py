"""Invite rewards against farming (SPEC 19): a relation keeps why the invitee's first top-up paid no
reward (below INVITE_REWARD_MIN_TOPUP, or the inviter's INVITE_REWARD_MAX_PER_MONTH reached), and
an index counts an inviter's rewards of the last 30 days.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("invite_relations", sa.Column("unrewarded_reason", sa.String(length=32), nullable=True))
    op.create_check_constraint(
        op.f("ck_invite_relations_unrewarded_reason_known"),
        "invite_relations",
        "unrewarded_reason IS NULL OR (rewarded_at IS NULL AND "
        "unrewarded_reason IN ('first_topup_too_small', 'monthly_limit'))",
    )
    op.create_index(
        "ix_invite_relations_inviter_id_rewarded_at", "invite_relations", ["inviter_id", "rewarded_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_invite_relations_inviter_id_rewarded_at", table_name="invite_relations")
    op.drop_constraint(op.f("ck_invite_relations_unrewarded_reason_known"), "invite_relations", type_="check")
    op.drop_column("invite_relations", "unrewarded_reason")
