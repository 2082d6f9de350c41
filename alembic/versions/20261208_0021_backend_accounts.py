"""Accounts for the SaaS's own backend (SPEC 25): `users.external_id` (the SaaS's id of the person,
unique), passwords made optional (an account the backend creates has none until its person sets
one), and `portal_tokens`, the one-use sign-in links, kept as SHA-256 hashes.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("external_id", sa.String(length=128), nullable=True))
    op.create_unique_constraint(op.f("uq_users_external_id"), "users", ["external_id"])
    op.create_check_constraint(op.f("ck_users_external_id_shape"), "users", r"external_id ~ '^[A-Za-z0-9._:-]{1,128}$'")
    op.alter_column("users", "password_hash", existing_type=sa.String(length=255), nullable=True)
    op.create_table(
        "portal_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("next_path", sa.String(length=500), nullable=False),
        sa.Column("return_url", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint("expires_at > created_at", name=op.f("ck_portal_tokens_expires_after_creation")),
        sa.CheckConstraint("(used_at IS NULL) = (session_id IS NULL)", name=op.f("ck_portal_tokens_used_with_session")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["user_sessions.id"],
            name=op.f("fk_portal_tokens_session_id_user_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_portal_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_portal_tokens_token_hash")),
    )
    op.create_index(op.f("ix_portal_tokens_user_id"), "portal_tokens", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_portal_tokens_user_id"), table_name="portal_tokens")
    op.drop_table("portal_tokens")
    op.execute("UPDATE users SET password_hash = '!' WHERE password_hash IS NULL")  # no password matches '!'
    op.alter_column("users", "password_hash", existing_type=sa.String(length=255), nullable=False)
    op.drop_constraint(op.f("ck_users_external_id_shape"), "users", type_="check")
    op.drop_constraint(op.f("uq_users_external_id"), "users", type_="unique")
    op.drop_column("users", "external_id")
