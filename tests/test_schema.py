"""Alembic owns the schema: the models and the migrations agree, and the migrations run both ways."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from ledger.db import make_engine
from ledger.models import Base
from ledger.schema import alembic_config, described_by_models


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
