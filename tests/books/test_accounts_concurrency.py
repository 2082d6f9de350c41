"""Charging under contention: real threads, one connection each, committed rows (SPEC 4, 5)."""

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.errors import InsufficientBalance
from ledger.models import AuditLog, BillingAccount, LedgerEntry, UsageLog
from ledger.services.books.charges import charge_usage
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL
from tests.helpers import funded_user, run_together

pytestmark = pytest.mark.committed
THREADS = 50


def test_fifty_parallel_charges_leave_the_exact_balance(committed):
    user = funded_user(committed, "10.00")

    def charge(i):
        with committed.session() as session:
            return charge_usage(session, user_id=user.id, amount="0.30", model="m", request_id=f"r{i}", ctx=INTERNAL)

    results = run_together(THREADS, charge)

    refused = [r for r in results if isinstance(r, InsufficientBalance)]
    charged = [r for r in results if not isinstance(r, Exception)]
    assert (len(charged), len(refused)) == (33, 17), [r for r in results if isinstance(r, Exception)][:3]
    assert all(r.balance >= 0 for r in refused)
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("0.1000")
        assert session.scalar(select(func.count()).select_from(UsageLog)) == 33
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 34
        assert session.scalar(select(func.min(LedgerEntry.balance_after))) == Decimal("0.1000")
        refusals = select(func.count()).where(AuditLog.action == "usage.insufficient_balance")
        assert session.scalar(refusals) == 17
        assert list(find_breaches(session)) == []


def test_parallel_repeats_of_one_request_id_charge_once(committed):
    user = funded_user(committed, "10.00")

    def charge(_i):
        with committed.session() as session:
            return charge_usage(session, user_id=user.id, amount="2.00", model="m", request_id="same", ctx=INTERNAL)

    results = run_together(20, charge)

    assert not [r for r in results if isinstance(r, Exception)]
    assert sorted(r.replayed for r in results) == [False] + [True] * 19
    assert len({r.usage.id for r in results}) == 1
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("8.0000")
        assert session.scalar(select(func.count()).select_from(UsageLog)) == 1


def test_fifty_parallel_api_deducts_leave_the_exact_balance(committed, app, internal_headers):
    user = funded_user(committed, "5.00")

    def deduct(i):
        response = app.test_client().post(
            "/api/billing/deduct",
            headers=internal_headers,
            json={"user_id": str(user.id), "amount": "0.25", "model": "m", "request_id": f"api-{i}"},
        )
        return response.status_code

    statuses = run_together(THREADS, deduct)

    assert (statuses.count(200), statuses.count(402)) == (20, 30)
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("0.0000")
        assert list(find_breaches(session)) == []
