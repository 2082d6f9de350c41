"""Usernames that look alike are one name (SPEC 19), by two keys made with Unicode's confusables
skeleton (UTS #39, as ICU computes it): `users.username_key` becomes the skeleton of the NFKC and
case folded name, case folded again, so that "ɑdmin" (Latin alpha), "admın" (dotless i) and "admin"
are one name, as are the Cyrillic "асе" and "ace", or "paypa1" and "paypal"; the new
`users.username_shape` is the skeleton of the name as pages show it, capitals kept, so that
"PaypaI" (capital i) and "Paypal" are one name too. A name is taken when either key is. Both are
text: a skeleton can be seven times the name.

Every existing key is computed, and two existing usernames may now share one. Nobody's username is
deleted or renamed: the oldest account (by created_at, then id) keeps the key, and each later one
gets "<key> <its id>" for it, which no username can have (usernames have no spaces): their names
keep working (saving a profile with the same name keeps its keys), while nobody else can take any
of those names (profile.update_profile refuses a name whose key is taken, or set aside as
"<key> <id>"). Each name set aside is printed.

Downgrade puts back 0013's key (NFKC and case folded) and its 128-character column, and drops the
shape. Keys cannot collide there: they were unique before this upgrade, and since then a name was
given only when its skeleton was neither taken nor set aside, while two names with one 0013 key
have one skeleton.

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


def _shape(name: str, checker: icu.SpoofChecker) -> str:  # a copy of profile.username_shape
    return checker.getSkeleton(0, unicodedata.normalize("NFKC", name))


def _named_users(connection: sa.Connection) -> list[sa.Row]:
    return connection.execute(
        sa.text("SELECT id, username FROM users WHERE username IS NOT NULL ORDER BY created_at, id")
    ).all()


def upgrade() -> None:
    # Without the unique index while keys change: a new key may be another row's old one for a moment.
    op.drop_index("uq_users_username_key", table_name="users")
    op.alter_column("users", "username_key", type_=sa.Text(), existing_type=sa.String(length=128))
    op.add_column("users", sa.Column("username_shape", sa.Text(), nullable=True))
    connection = op.get_bind()
    checker = icu.SpoofChecker()
    taken: dict[str, set[str]] = {"key": set(), "shape": set()}
    rows: list[dict[str, object]] = []
    for user_id, name in _named_users(connection):
        row: dict[str, object] = {"id": user_id}
        for column, value in (("key", _skeleton_key(name, checker)), ("shape", _shape(name, checker))):
            if value in taken[column]:
                print(f"username {name!r} of user {user_id}: its {column} is set aside (an older account's look-alike)")
                value = f"{value} {user_id}"
            taken[column].add(value)
            row[column] = value
        rows.append(row)
    if rows:
        connection.execute(
            sa.text("UPDATE users SET username_key = :key, username_shape = :shape WHERE id = :id"), rows
        )
    op.create_index("uq_users_username_key", "users", ["username_key"], unique=True)
    op.create_index("uq_users_username_shape", "users", ["username_shape"], unique=True)
    op.create_check_constraint(
        op.f("ck_users_username_with_shape"), "users", "(username IS NULL) = (username_shape IS NULL)"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_users_username_with_shape"), "users", type_="check")
    op.drop_index("uq_users_username_shape", table_name="users")
    op.drop_column("users", "username_shape")
    op.drop_index("uq_users_username_key", table_name="users")
    connection = op.get_bind()
    rows = [{"id": user_id, "key": _folded(name)} for user_id, name in _named_users(connection)]
    if rows:
        connection.execute(sa.text("UPDATE users SET username_key = :key WHERE id = :id"), rows)
    op.alter_column("users", "username_key", type_=sa.String(length=128), existing_type=sa.Text())
    op.create_index("uq_users_username_key", "users", ["username_key"], unique=True)
