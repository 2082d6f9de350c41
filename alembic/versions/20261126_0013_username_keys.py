"""Usernames compared as NFKC and case folded (SPEC 19): `users.username_key` holds that key, unique,
so that "ａｄｍｉｎ" (full-width) and "Admin" are the same name as "admin". Existing names get their
key here (kept in NFKC form, as new ones are); should two old names share one (they could:
lower() was the rule), the later one's username is cleared, with an audit row on that person,
since two people may not answer to one name.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 04:45:00.000000
"""

import json
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key(name: str) -> str:  # a copy of profile.username_key: a migration does not import the app
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def upgrade() -> None:
    op.add_column("users", sa.Column("username_key", sa.String(length=128), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT id, username FROM users WHERE username IS NOT NULL ORDER BY created_at, id")
    ).all()
    taken: set[str] = set()
    for user_id, name in rows:
        key = _key(name)
        if key in taken:
            print(f"username {name!r} of user {user_id} clears: another person has the same name")
            connection.execute(sa.text("UPDATE users SET username = NULL WHERE id = :id"), {"id": user_id})
            connection.execute(  # the person's own security history says so
                sa.text(
                    "INSERT INTO audit_logs (user_id, actor, action, details) "
                    "VALUES (:id, 'system', 'profile.username_cleared', CAST(:details AS jsonb))"
                ),
                {"id": user_id, "details": json.dumps({"username": name, "why": "same name as an earlier person"})},
            )
            continue
        taken.add(key)
        plain = unicodedata.normalize("NFKC", name)  # as new names are kept: full-width letters as plain ones
        plain = plain if len(plain) <= 30 else name
        connection.execute(
            sa.text("UPDATE users SET username = :plain, username_key = :key WHERE id = :id"),
            {"plain": plain, "key": key, "id": user_id},
        )
    op.drop_index("uq_users_username_lower", table_name="users")
    op.create_index("uq_users_username_key", "users", ["username_key"], unique=True)
    op.create_check_constraint(
        op.f("ck_users_username_with_key"), "users", "(username IS NULL) = (username_key IS NULL)"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_users_username_with_key"), "users", type_="check")
    op.drop_index("uq_users_username_key", table_name="users")
    op.create_index("uq_users_username_lower", "users", [sa.literal_column("lower(username)")], unique=True)
    op.drop_column("users", "username_key")
