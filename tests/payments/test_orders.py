"""The payments service: the order status machine and reconcile (query2 for open and late orders)."""

from dataclasses import replace
from decimal import Decimal

import pytest

from ledger.models import IllegalTransition, PaymentStatus, PaymentTransaction
from ledger.services.context import SYSTEM
from ledger.services.payments.orders import create_topup
from ledger.services.payments.settlement import reconcile
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import XORPAY_AID, balance_of


def test_status_machine_refuses_moves_out_of_succeeded():
    order = PaymentTransaction(status=PaymentStatus.SUCCEEDED)
    for status in PaymentStatus:
        with pytest.raises(IllegalTransition):
            order.move_to(status)
    with pytest.raises(IllegalTransition):
        PaymentTransaction(status=PaymentStatus.EXPIRED).move_to(PaymentStatus.PENDING)


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


def test_the_payers_screen_names_the_site(session, xorpay, settings):
    """XorPay shows the order's name on the Alipay / WeChat screen and in the payer's bill: SITE_NAME."""
    xorpay.create_ok(aoid="aoid-1", qr="https://qr.alipay.com/x")
    branded = replace(settings, SITE_NAME="像素工坊")
    create_topup(session, xorpay.client, user=UserFactory(), amount="12.50", ctx=SYSTEM.using(branded))
    assert xorpay.sent_forms()[-1]["name"] == "像素工坊 余额充值 ¥12.50"
