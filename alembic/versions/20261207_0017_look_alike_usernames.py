"""Usernames that look alike are one name: `users.username_key` becomes the Unicode confusables
skeleton (UTS #39, as ICU computes it) of the NFKC and case folded name, case folded again, so that
"ɑdmin" (Latin alpha), "admın" (dotless i) and "admin" are one name, as are the Cyrillic "асе" and
"ace", or "paypa1" and "paypal". The column becomes text: a skeleton can be seven times the name.

Every existing key is recomputed, and two existing usernames may now share one. Nobody's username is
deleted or renamed: the oldest account (by created_at, then id) gets the key, and each later one the
key "<key> <its id>", which no username can have (usernames have no spaces): their names keep
working (saving a profile with the same name keeps that key), while nobody else can take any of
those names (profile.update_profile refuses a name whose key is taken, or set aside as "<key> <id>").
Each name set aside is printed.

Downgrade puts back 0013's key (NFKC and case folded) and its 128-character column. Keys cannot
collide there: they were unique before this upgrade, and since then a name was given only when its
skeleton was neither taken nor set aside, while two names with one 0013 key have one skeleton.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 13:45:00.000000
"""

import unicodedata
from collections.abc import Sequence

import icu
import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _folded(name: str) -> str:  # 0013's key
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def _skeleton_key(name: str, checker: icu.SpoofChecker) -> str:  # a copy of profile.username_key
    return checker.getSkeleton(0, _folded(name)).casefold()


def _named_users(connection: sa.Connection) -> list[sa.Row]:
    return connection.execute(
        sa.text("SELECT id, username FROM users WHERE username IS NOT NULL ORDER BY created_at, id")
    ).all()


def _set_keys(connection: sa.Connection, keys: list[dict[str, object]]) -> None:
    if keys:
        connection.execute(sa.text("UPDATE users SET username_key = :key WHERE id = :id"), keys)


def upgrade() -> None:
    # Without the unique index while keys change: a new key may be another row's old one for a moment.
    op.drop_index("uq_users_username_key", table_name="users")
    op.alter_column("users", "username_key", type_=sa.Text(), existing_type=sa.String(length=128))
    connection = op.get_bind()
    checker = icu.SpoofChecker()
    taken: set[str] = set()
    keys: list[dict[str, object]] = []
    for user_id, name in _named_users(connection):
        key = _skeleton_key(name, checker)
        if key in taken:
            print(f"username {name!r} of user {user_id} is kept, set aside: an older account has a look-alike")
            key = f"{key} {user_id}"
        taken.add(key)
        keys.append({"id": user_id, "key": key})
    _set_keys(connection, keys)
    op.create_index("uq_users_username_key", "users", ["username_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_username_key", table_name="users")
    connection = op.get_bind()
    _set_keys(connection, [{"id": user_id, "key": _folded(name)} for user_id, name in _named_users(connection)])
    op.alter_column("users", "username_key", type_=sa.String(length=128), existing_type=sa.Text())
    op.create_index("uq_users_username_key", "users", ["username_key"], unique=True)
