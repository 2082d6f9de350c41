"""Settlement (payments.settlement): reconcile asks XorPay (query2) about open and late orders, credits the
paid ones and expires the stale ones."""

from decimal import Decimal

import pytest

from ledger.models import PaymentTransaction
from ledger.services.context import SYSTEM
from ledger.services.payments.settlement import reconcile
from tests.factories import PaymentFactory
from tests.helpers import XORPAY_AID, balance_of


def test_reconcile_credits_paid_and_expires_stale_orders(session, xorpay, settings):
    from datetime import UTC, datetime, timedelta

    paid = PaymentFactory()
    stale = PaymentFactory(expires_at=datetime.now(UTC) - timedelta(minutes=1))
    waiting = PaymentFactory()
    done = PaymentFactory(status="succeeded", paid_at=datetime.now(UTC))
    answers = {str(paid.id): "success", str(stale.id): "new", str(waiting.id): "new"}
    xorpay.server.expect_request(f"/api/query2/{XORPAY_AID}").respond_with_handler(
        lambda request: __import__("werkzeug").Response(
            f'{{"status": "{answers[request.args["order_id"]]}"}}', content_type="application/json"
        )
    )

    report = reconcile(session, SYSTEM.using(settings), xorpay.client)

    assert (report.checked, report.credited, report.expired, report.errors) == (3, 1, 1, 0)
    statuses = {o.id: session.get(PaymentTransaction, o.id).status for o in (paid, stale, waiting, done)}
    assert statuses == {paid.id: "succeeded", stale.id: "expired", waiting.id: "pending", done.id: "succeeded"}
    assert balance_of(session, paid.user_id) == Decimal("50.00")


@pytest.mark.parametrize("status", ["expired", "failed"])
def test_reconcile_finds_a_late_payment_on_an_expired_or_failed_order(session, xorpay, status, settings):
    order = PaymentFactory(status=status)
    xorpay.query2_answers("success")
    report = reconcile(session, SYSTEM.using(settings), xorpay.client)
    assert (report.checked, report.credited) == (1, 1)
    session.refresh(order)
    assert order.status == "succeeded" and balance_of(session, order.user_id) == Decimal("50.00")


def test_reconcile_leaves_old_expired_and_unknown_failed_orders_alone(session, xorpay, settings):
    from datetime import UTC, datetime, timedelta

    PaymentFactory(status="expired", created_at=datetime.now(UTC) - timedelta(days=3))
    PaymentFactory(status="failed", provider_order_id=None)
    assert reconcile(session, SYSTEM.using(settings), xorpay.client).checked == 0
