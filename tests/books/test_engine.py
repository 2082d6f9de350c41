"""The one charge engine's write (books.engine): a batch and single charges leave the same rows for
the same charges, whatever the text and params; a statement the database refuses is SQLAlchemy's
error, with nothing written; the write is planned once and reused."""

from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from ledger.models import AuditLog, LedgerEntry, LedgerKind, UsageLog
from ledger.services.books import charges
from ledger.services.books.batch_charges import charge_batch
from ledger.services.books.charges import charge_usage
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL
from tests.factories import UserFactory
from tests.helpers import balance_of, count_rows

ODD_TEXT = [
    "plain",
    "quote ' and \" double",
    "back\\slash \\\\ \\u0041 \\n",
    "emoji \U0001f600 \U00010348",
    "中文 请求",
    "  spaces around  ",
    "line\nbreak\ttab\u2028\u2029",
    "$$ dollar $$ ; DROP TABLE x; --",
    '{"json": [1, 2]}',
    "%(p_items)s %s :name",
]
ODD_PARAMS = [
    {},
    {"n": 5, "id": "x", "amount": "9", "user_id": None, "details": {"n": [1, 2, {"n": None}]}},
    {"float": 0.1, "big": 10**40, "small": -1.5e-7, "t": True, "f": False, "null": None},
    {"unicode": "\U0001f600 中文 \u2028", "quotes": "\\\"'", "empty": "", "nested": {"a": {"b": [[], {}]}}},
    {"": "empty key"},
]


def written(session, user) -> tuple[list, list, list]:
    usage = session.execute(
        select(UsageLog.amount, UsageLog.model, UsageLog.params, UsageLog.request_id, UsageLog.balance_after)
        .where(UsageLog.user_id == user.id)
        .order_by(UsageLog.request_id)
    ).all()
    entries = session.execute(
        select(LedgerEntry.amount, LedgerEntry.balance_after, LedgerEntry.kind)
        .where(LedgerEntry.user_id == user.id, LedgerEntry.kind == LedgerKind.USAGE)
        .order_by(LedgerEntry.id)
    ).all()
    audit = session.scalars(
        select(AuditLog.details)
        .where(AuditLog.user_id == user.id, AuditLog.action == "usage.charged")
        .order_by(AuditLog.id)
    ).all()
    same_in_both = [{k: v for k, v in details.items() if k not in ("usage_id", "batch")} for details in audit]
    return usage, entries, same_in_both


def test_a_batch_writes_the_rows_fifty_single_charges_write(session):
    one_by_one, in_a_batch = UserFactory(balance="1000.00"), UserFactory(balance="1000.00")
    items = [
        {"amount": f"0.{i}{j}01", "model": text[:100], "request_id": f"{text}#{j}", "params": params}
        for i, text in enumerate(ODD_TEXT)
        for j, params in enumerate(ODD_PARAMS)
    ]
    for item in items:
        charge_usage(session, user_id=one_by_one.id, ctx=INTERNAL, **item)
    batch = [{**item, "user_id": str(in_a_batch.id)} for item in items]
    results = charge_batch(session, charges=batch, ctx=INTERNAL)
    assert [r.status for r in results] == ["charged"] * 50
    assert written(session, one_by_one) == written(session, in_a_batch)
    total = sum(Decimal(item["amount"]) for item in items)
    assert balance_of(session, in_a_batch.id) == balance_of(session, one_by_one.id) == Decimal("1000.00") - total
    assert list(find_breaches(session)) == []


def test_a_statement_the_database_refuses_is_sqlalchemys_error_and_writes_nothing(session, monkeypatch):
    """The single charge's statements run on the DBAPI connection; a refusal still comes through
    SQLAlchemy (as IntegrityError, which the web layer and retry_on_disconnect know)."""
    person = UserFactory(balance="5.00")
    taken = charges.take

    def below_zero(*args):  # a ledger entry may not go below 0: the database refuses the write
        usage = taken(*args)
        usage.balance_after = Decimal("-1.00")
        return usage

    monkeypatch.setattr(charges, "take", below_zero)
    before = count_rows(session, UsageLog), count_rows(session, LedgerEntry), count_rows(session, AuditLog)
    with pytest.raises(IntegrityError, match="balance_after_not_negative"):
        charge_usage(session, user_id=person.id, amount="1.00", model="m", request_id="refused", ctx=INTERNAL)
    assert (count_rows(session, UsageLog), count_rows(session, LedgerEntry), count_rows(session, AuditLog)) == before
    assert balance_of(session, person.id) == Decimal("5.00")


def test_the_write_reads_one_account_and_is_planned_once_and_reused(session):
    """At 10,000 accounts (analyzed), the engine's write of a charge finds the account by its index,
    not by reading every billing account (the planner takes the JSON array for 100 rows), and
    PostgreSQL reuses one generic plan once psycopg has prepared it: an estimate drawn from a
    parameter's value had it plan the statement anew at every charge."""
    session.execute(
        text(
            "INSERT INTO users (id, email, password_hash, invite_code) "
            "SELECT gen_random_uuid(), 'plan-' || n || '@example.com', 'x', 'plan' || n "
            "FROM generate_series(1, 10000) n"
        )
    )
    session.execute(text("INSERT INTO billing_accounts (user_id, balance) SELECT id, 5 FROM users"))
    session.execute(
        text(
            "WITH entry AS (INSERT INTO ledger_entries (user_id, amount, balance_after, kind) "
            "SELECT user_id, 5, 5, 'adjustment' FROM billing_accounts RETURNING id, user_id) "
            "INSERT INTO credit_lots (user_id, category, ledger_entry_id, amount, remaining) "
            "SELECT user_id, 'granted', id, 5, 5 FROM entry"
        )
    )
    session.execute(text("ANALYZE users, billing_accounts, credit_lots"))
    people = session.scalars(text("SELECT user_id FROM billing_accounts LIMIT 3")).all()
    for n in range(20):  # psycopg prepares a statement at its 6th run; PostgreSQL plans 5 for it, then decides
        charge_usage(session, user_id=people[n % 3], amount="0.01", model="m", request_id=f"p{n}", ctx=INTERNAL)
    # The single charge's write (no ORDER BY), as psycopg prepared it in this test: the newest. A
    # rollback clears psycopg's own list, not the server's, so an earlier test's may be there too.
    name, generic, custom, parameters = session.execute(
        text(
            "SELECT name, generic_plans, custom_plans, cardinality(parameter_types) FROM pg_prepared_statements "
            "WHERE statement LIKE '%INSERT INTO usage_logs%' AND statement NOT LIKE '%ORDER BY item.n%' "
            "ORDER BY prepare_time DESC LIMIT 1"
        )
    ).one()
    assert custom <= 5 and generic >= 10, (generic, custom)  # not planned anew at each call
    arguments = ", ".join(["NULL"] * parameters)
    session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    plan = "\n".join(session.scalars(text(f"EXPLAIN EXECUTE {name}({arguments})")))
    assert "billing_accounts" in plan and "Seq Scan on billing_accounts" not in plan, plan
    assert "credit_lots" in plan and "Seq Scan on credit_lots" not in plan, plan
