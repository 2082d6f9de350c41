"""Refunds of one order at the same time (SPEC 15): the order's lock lets one through at a time, so the
refunded total never exceeds the order. Real threads, committed rows."""

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.errors import RefundRefused
from ledger.models import BillingAccount, LedgerEntry, PaymentTransaction
from ledger.services.books.invariants import find_breaches
from ledger.services.context import XORPAY
from ledger.services.payments.refunds import refund_order
from ledger.services.payments.webhook import handle_notify
from tests.helpers import ADMIN, funded_user, pending_order, run_together, signed_notify

pytestmark = pytest.mark.committed


def test_concurrent_refunds_of_one_order_never_refund_more_than_it(committed, settings, xorpay):
    user = funded_user(committed, "1.00")
    order = pending_order(committed, user, amount="50.00")
    with committed.session() as session:
        handle_notify(session, XORPAY.using(settings), signed_notify(order))
    xorpay.refund_answers("ok")

    def refund(_i):
        with committed.session() as session:
            return refund_order(session, xorpay.client, ADMIN, order.id, "20.00", reason="race")

    results = run_together(8, refund)

    # While one refund is with XorPay, the others are refused (a pending refund blocks its order), so
    # how many of the 8 get through depends on timing: one or two, never a third (20 + 20 of 50).
    made = [r for r in results if not isinstance(r, Exception)]
    assert [r.status for r in made] in (["succeeded"], ["succeeded", "succeeded"])
    assert all(isinstance(r, RefundRefused) for r in results if isinstance(r, Exception))
    if len(made) == 1:
        assert refund(8).status == "succeeded"  # the second 20, now that nothing is pending
    with pytest.raises(RefundRefused, match="At most"):
        refund(9)  # a third would exceed the order's 50
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("11.0000")
        refunds = select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "refund")
        assert session.scalar(refunds) == 2
        assert session.get(PaymentTransaction, order.id).status == "succeeded"
        assert list(find_breaches(session)) == []
