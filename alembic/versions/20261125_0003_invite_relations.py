"""Invite relations (one inviter per person) and the ledger entries of their rewards.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 12:13:57.735074
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invite_relations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("inviter_id", sa.Uuid(), nullable=False),
        sa.Column("invitee_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("rewarded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("inviter_reward", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("invitee_reward", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.CheckConstraint(
            "(rewarded_at IS NULL) = (inviter_reward IS NULL) AND (rewarded_at IS NULL) = (invitee_reward IS NULL)",
            name=op.f("ck_invite_relations_rewarded_with_amounts"),
        ),
        sa.CheckConstraint("inviter_id <> invitee_id", name=op.f("ck_invite_relations_not_self")),
        sa.CheckConstraint(
            "inviter_reward >= 0 AND invitee_reward >= 0", name=op.f("ck_invite_relations_rewards_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["invitee_id"], ["users.id"], name=op.f("fk_invite_relations_invitee_id_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["inviter_id"], ["users.id"], name=op.f("fk_invite_relations_inviter_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_relations")),
        sa.UniqueConstraint("invitee_id", name=op.f("uq_invite_relations_invitee_id")),
    )
    op.create_index(
        "ix_invite_relations_inviter_id_created_at", "invite_relations", ["inviter_id", "created_at"], unique=False
    )
    op.add_column("ledger_entries", sa.Column("invite_relation_id", sa.Uuid(), nullable=True))
    op.create_unique_constraint(
        op.f("uq_ledger_entries_invite_relation_id_user_id"), "ledger_entries", ["invite_relation_id", "user_id"]
    )
    op.create_foreign_key(
        op.f("fk_ledger_entries_invite_relation_id_invite_relations"),
        "ledger_entries",
        "invite_relations",
        ["invite_relation_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    # Autogenerate does not see CHECK constraints added to an existing table.
    op.create_check_constraint(
        op.f("ck_ledger_entries_reward_has_invite"),
        "ledger_entries",
        "(kind = 'invite_reward') = (invite_relation_id IS NOT NULL)",
    )
    op.create_check_constraint(
        op.f("ck_ledger_entries_reward_is_credit"), "ledger_entries", "kind <> 'invite_reward' OR amount > 0"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_ledger_entries_reward_is_credit"), "ledger_entries", type_="check")
    op.drop_constraint(op.f("ck_ledger_entries_reward_has_invite"), "ledger_entries", type_="check")
    op.drop_constraint(
        op.f("fk_ledger_entries_invite_relation_id_invite_relations"), "ledger_entries", type_="foreignkey"
    )
    op.drop_constraint(op.f("uq_ledger_entries_invite_relation_id_user_id"), "ledger_entries", type_="unique")
    op.drop_column("ledger_entries", "invite_relation_id")
    op.drop_index("ix_invite_relations_inviter_id_created_at", table_name="invite_relations")
    op.drop_table("invite_relations")
