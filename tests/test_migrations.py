"""Alembic owns the schema: the models and the migrations agree, and the migrations run both ways."""

import unicodedata
import uuid
from decimal import Decimal

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Text, inspect, text
from sqlalchemy.engine import make_url

from ledger.db import make_engine
from ledger.migrations import alembic_config, described_by_models
from ledger.models import Base


@pytest.fixture
def scratch_engine(database_url):
    """A database of its own, so that downgrading does not disturb the other tests."""
    admin = make_engine(database_url, isolation_level="AUTOCOMMIT")
    name = make_url(database_url).database + "_scratch"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(database_url).set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_models_and_migrations_agree(engine):
    with engine.connect() as conn:
        opts = {"compare_type": True, "include_name": described_by_models}
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
    assert diff == []


def test_downgrade_to_base_then_upgrade_to_head(scratch_engine):
    with scratch_engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    with scratch_engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert set(inspect(scratch_engine).get_table_names()) <= {"alembic_version"}
    with scratch_engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert {t.name for t in Base.metadata.sorted_tables} <= set(inspect(scratch_engine).get_table_names())


@pytest.mark.parametrize(
    ("sql", "constraint"),
    [
        ("UPDATE billing_accounts SET balance = -0.0001", "ck_billing_accounts_balance_not_negative"),
        (
            "INSERT INTO ledger_entries (user_id, amount, balance_after, kind) "
            "SELECT user_id, -1, 0, 'usage' FROM billing_accounts",
            "ck_ledger_entries_usage_has_usage_log",
        ),
        (
            "INSERT INTO ledger_entries (user_id, amount, balance_after, kind) "
            "SELECT user_id, 0, 0, 'adjustment' FROM billing_accounts",
            "ck_ledger_entries_amount_not_zero",
        ),
        (
            "INSERT INTO ledger_entries (user_id, amount, balance_after, kind) "
            "SELECT user_id, 1, 1, 'gift' FROM billing_accounts",
            "ck_ledger_entries_kind_known",
        ),
        ("UPDATE users SET email = upper(email)", "ck_users_email_lowercase"),
        ("UPDATE users SET username = 'admin'", "ck_users_username_with_key"),  # a name without its key
    ],
)
def test_the_database_refuses_states_that_break_the_invariants(session, sql, constraint):
    from sqlalchemy.exc import IntegrityError

    from tests.factories import UserFactory

    UserFactory(balance="1.00")
    with pytest.raises(IntegrityError, match=constraint), session.begin_nested():
        session.execute(text(sql))


def test_a_request_id_is_charged_once_by_the_database(session):
    from sqlalchemy.exc import IntegrityError

    from tests.factories import UserFactory

    user = UserFactory(balance="5.00")
    insert = text(
        "INSERT INTO usage_logs (id, user_id, amount, model, request_id, balance_after) "
        "VALUES (gen_random_uuid(), :u, 1, 'm', 'same', 4)"
    )
    session.execute(insert, {"u": user.id})
    with pytest.raises(IntegrityError, match="uq_usage_logs_user_id_request_id"), session.begin_nested():
        session.execute(insert, {"u": user.id})


# Named people as 0016 keeps them: (id, username, created_at), oldest of each look-alike group first.
LOOK_ALIKES = [
    ("10000000-0000-4000-8000-000000000000", "admin", "2026-01-01"),
    ("20000000-0000-4000-8000-000000000000", "\u0251dmin", "2026-02-01"),  # Latin alpha
    ("30000000-0000-4000-8000-000000000000", "adm\u0131n", "2026-03-01"),  # dotless i
    ("40000000-0000-4000-8000-000000000000", "\u0430\u0441\u0435", "2026-01-05"),  # Cyrillic, older
    ("50000000-0000-4000-8000-000000000000", "ace", "2026-01-06"),
    ("60000000-0000-4000-8000-000000000000", "paypa1", "2026-01-07"),  # the same instant: by id
    ("70000000-0000-4000-8000-000000000000", "paypal", "2026-01-07"),
    ("80000000-0000-4000-8000-000000000000", "Bob", "2026-01-08"),
    ("90000000-0000-4000-8000-000000000000", None, "2026-01-09"),
    ("a0000000-0000-4000-8000-000000000000", "Ivan", "2026-01-10"),  # its shape is lvan's
    ("b0000000-0000-4000-8000-000000000000", "lvan", "2026-01-11"),
]


def _names_and_keys(engine, shape: bool = True):
    columns = "id::text, username, username_key" + (", username_shape" if shape else "")
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT {columns} FROM users ORDER BY id")).all()  # noqa: S608 - our own columns


def test_skeleton_keys_keep_every_name_and_set_later_look_alikes_aside_both_ways(scratch_engine):
    with scratch_engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0016")
        for number, (user_id, name, created) in enumerate(LOOK_ALIKES):
            conn.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, username, username_key, invite_code, created_at) "
                    "VALUES (:id, :email, 'x', :name, :key, :code, CAST(:created AS timestamptz))"
                ),
                {
                    "id": user_id,
                    "email": f"p{number}@example.com",
                    "name": name,
                    "key": name and unicodedata.normalize("NFKC", name.casefold()),  # 0013's key
                    "code": f"c{number}",
                    "created": created,
                },
            )
    before = _names_and_keys(scratch_engine, shape=False)
    ids = [user_id for user_id, _name, _created in LOOK_ALIKES]
    upgraded = [
        (ids[0], "admin", "adrnin", "adrnin"),
        (ids[1], "\u0251dmin", f"adrnin {ids[1]}", f"adrnin {ids[1]}"),
        (ids[2], "adm\u0131n", f"adrnin {ids[2]}", f"adrnin {ids[2]}"),
        (ids[3], "\u0430\u0441\u0435", "ace", "ace"),
        (ids[4], "ace", f"ace {ids[4]}", f"ace {ids[4]}"),
        (ids[5], "paypa1", "paypal", "paypal"),
        (ids[6], "paypal", f"paypal {ids[6]}", f"paypal {ids[6]}"),
        (ids[7], "Bob", "bob", "Bob"),
        (ids[8], None, None, None),
        (ids[9], "Ivan", "ivan", "lvan"),
        (ids[10], "lvan", "lvan", f"lvan {ids[10]}"),  # only its shape was taken
    ]
    for _ in range(2):  # upgrade, downgrade, and again
        with scratch_engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        assert _names_and_keys(scratch_engine) == upgraded
        assert isinstance(_column_type(scratch_engine, "username_key"), Text)
        with scratch_engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0016")
        assert _names_and_keys(scratch_engine, shape=False) == before
        assert "username_shape" not in {c["name"] for c in inspect(scratch_engine).get_columns("users")}
        assert _column_type(scratch_engine, "username_key").length == 128


def _column_type(engine, name):
    return next(c["type"] for c in inspect(engine).get_columns("users") if c["name"] == name)


def _history_before_lots(conn) -> tuple[str, str]:
    """At revision 0017: a person who paid ¥100, was given ¥50, spent ¥60, had ¥20 of the order
    refunded and ¥30 more pending; another given ¥5 and debited ¥2 by an admin."""
    a, b, order = "0b4c2a4e-0000-4000-8000-00000000000a", "0b4c2a4e-0000-4000-8000-00000000000b", str(uuid.uuid4())
    usage, refund, pending = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    statements = [
        "INSERT INTO users (id, email, password_hash, invite_code) VALUES (:a, 'a@example.com', 'x', 'ca'),"
        " (:b, 'b@example.com', 'x', 'cb')",
        "INSERT INTO billing_accounts (user_id, balance, held) VALUES (:a, 70, 30), (:b, 3, 0)",
        "INSERT INTO payment_transactions (id, user_id, amount, pay_type, status, provider_order_id, expires_at,"
        " paid_at) VALUES (:order, :a, 100, 'alipay', 'succeeded', 'aoid-1', now(), now())",
        "INSERT INTO usage_logs (id, user_id, amount, model, request_id, balance_after) VALUES"
        " (:usage, :a, 60, 'm', 'r1', 90)",
        "INSERT INTO refunds (id, payment_transaction_id, user_id, amount, reason, status, settled_at) VALUES"
        " (:refund, :order, :a, 20, 'asked', 'succeeded', now()), (:pending, :order, :a, 30, 'asked', 'pending', NULL)",
        "INSERT INTO ledger_entries (user_id, amount, balance_after, kind, payment_transaction_id, usage_log_id,"
        " refund_id) VALUES (:a, 100, 100, 'topup', :order, NULL, NULL), (:a, 50, 150, 'adjustment', NULL, NULL,"
        " NULL), (:a, -60, 90, 'usage', NULL, :usage, NULL), (:a, -20, 70, 'refund', NULL, NULL, :refund),"
        " (:b, 5, 5, 'adjustment', NULL, NULL, NULL), (:b, -2, 3, 'adjustment', NULL, NULL, NULL)",
    ]
    # A third pays twice; while a refund of the first order is pending, a charge spends 40.00: the
    # refund's 30.00 stays set aside in the first order's lot, so the charge takes the rest of it and
    # 20.00 of the second.
    statements += [
        "INSERT INTO users (id, email, password_hash, invite_code) VALUES (:c, 'c@example.com', 'x', 'cc')",
        "INSERT INTO billing_accounts (user_id, balance, held) VALUES (:c, 60, 30)",
        "INSERT INTO payment_transactions (id, user_id, amount, pay_type, status, provider_order_id, expires_at,"
        " paid_at) VALUES (:first, :c, 50, 'alipay', 'succeeded', 'aoid-2', now(), now()),"
        " (:second, :c, 50, 'alipay', 'succeeded', 'aoid-3', now(), now())",
        "INSERT INTO refunds (id, payment_transaction_id, user_id, amount, reason, status, created_at) VALUES"
        " (:waiting, :first, :c, 30, 'asked', 'pending', '2026-01-01T02:00Z')",
        "INSERT INTO usage_logs (id, user_id, amount, model, request_id, balance_after) VALUES"
        " (:later, :c, 40, 'm', 'r1', 60)",
        "INSERT INTO ledger_entries (user_id, amount, balance_after, kind, payment_transaction_id, usage_log_id,"
        " created_at) VALUES (:c, 50, 50, 'topup', :first, NULL, '2026-01-01T00:00Z'),"
        " (:c, 50, 100, 'topup', :second, NULL, '2026-01-01T01:00Z'),"
        " (:c, -40, 60, 'usage', NULL, :later, '2026-01-01T03:00Z')",
    ]
    values = {"a": a, "b": b, "order": order, "usage": usage, "refund": refund, "pending": pending}
    values |= {"c": "0b4c2a4e-0000-4000-8000-00000000000c", "first": str(uuid.uuid4()), "second": str(uuid.uuid4())}
    values |= {"waiting": str(uuid.uuid4()), "later": str(uuid.uuid4())}
    for sql in statements:
        conn.execute(text(sql), values)
    return a, b


def _lots(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT u.email, l.category, l.amount, l.remaining, l.reserved FROM credit_lots l"
                " JOIN users u ON u.id = l.user_id ORDER BY u.email, l.id"
            )
        ).all()


def test_lots_reproduce_the_history_and_the_books_verify_both_ways(scratch_engine):
    from sqlalchemy.orm import Session

    from ledger.services.books.invariants import find_breaches

    with scratch_engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0017")
        _history_before_lots(conn)
    for _ in range(2):  # upgrade, downgrade, and again
        with scratch_engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        # the gift went first; the refund came from the order's money; the pending one is set aside there
        assert _lots(scratch_engine) == [
            ("a@example.com", "paid", Decimal("100.0000"), Decimal("70.0000"), Decimal("30.0000")),
            ("a@example.com", "granted", Decimal("50.0000"), Decimal("0.0000"), Decimal("0.0000")),
            ("b@example.com", "granted", Decimal("5.0000"), Decimal("3.0000"), Decimal("0.0000")),
            ("c@example.com", "paid", Decimal("50.0000"), Decimal("30.0000"), Decimal("30.0000")),
            ("c@example.com", "paid", Decimal("50.0000"), Decimal("30.0000"), Decimal("0.0000")),
        ]
        with Session(scratch_engine) as session:
            assert list(find_breaches(session)) == []
        with scratch_engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0017")
        assert "credit_lots" not in inspect(scratch_engine).get_table_names()
