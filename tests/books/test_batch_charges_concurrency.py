"""Batches under contention (SPEC 12): batches naming the same people in opposite orders, with single
deducts in between, never deadlock, and the books come out exact. Real threads, committed rows."""

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.models import BillingAccount, UsageLog
from ledger.services.books.batch_charges import charge_batch
from ledger.services.books.charges import charge_usage
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL
from tests.helpers import funded_user, run_together

pytestmark = pytest.mark.committed


def test_opposite_batches_and_single_deducts_never_deadlock_and_spend_exactly(committed):
    people = [funded_user(committed, "100.00") for _ in range(6)]

    def work(i):
        with committed.session() as session:
            if i % 3:  # two threads in three send a batch: every person twice, forwards or backwards
                order = people if i % 2 else list(reversed(people))
                charges = [
                    {"user_id": str(p.id), "amount": "0.25", "model": "m", "request_id": f"b{i}-{n}-{k}"}
                    for n, p in enumerate(order)
                    for k in range(2)
                ]
                return charge_batch(session, charges=charges, ctx=INTERNAL)
            person = people[i % len(people)]
            return charge_usage(session, user_id=person.id, amount="0.10", model="m", request_id=f"d{i}", ctx=INTERNAL)

    results = run_together(30, work)

    assert [r for r in results if isinstance(r, Exception)] == []
    batches = [r for r in results if isinstance(r, list)]
    assert all(item.status == "charged" for b in batches for item in b)
    singles = [i for i in range(30) if not i % 3]
    with committed.session() as session:
        for n, person in enumerate(people):
            deducted = Decimal("0.10") * sum(1 for i in singles if i % len(people) == n)
            expected = Decimal("100.00") - Decimal("0.50") * len(batches) - deducted
            assert session.get(BillingAccount, person.id).balance == expected
        assert session.scalar(select(func.count()).select_from(UsageLog)) == 12 * len(batches) + len(singles)
        assert list(find_breaches(session)) == []
