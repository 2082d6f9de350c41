"""/recharge pages: "check now" asks XorPay and credits a paid order; others' orders are 404."""

from decimal import Decimal

import pytest

from ledger.services.payments import reconcile
from ledger.services.xorpay import sign
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import XORPAY_SECRET, balance_of, post_form


@pytest.mark.parametrize(
    ("query2", "status", "credited"),
    [
        ("payed", "succeeded", True),
        ("success", "succeeded", True),
        ("fee_error", "succeeded", True),
        ("new", "pending", False),
        ("expire", "expired", False),
    ],
)
def test_check_now_asks_xorpay_and_credits_if_paid(client, auth, session, xorpay, query2, status, credited):
    user = UserFactory()
    order = PaymentFactory(user=user)
    auth.login(user)
    xorpay.query2_answers(query2)
    response = post_form(client, auth, f"/recharge/{order.id}/check", "/")
    assert response.status_code == 302
    session.refresh(order)
    assert order.status == status
    assert balance_of(session, user.id) == (Decimal("50.00") if credited else 0)
    request, _ = xorpay.server.log[0]
    assert request.args["order_id"] == str(order.id) and request.args["sign"] == sign(str(order.id), XORPAY_SECRET)


def test_check_now_on_another_persons_order_is_404(client, auth, session, xorpay):
    order = PaymentFactory()
    auth.login(UserFactory())
    response = post_form(client, auth, f"/recharge/{order.id}/check", "/")
    assert response.status_code == 404
    assert xorpay.server.log == []


def test_query2_error_status_is_a_gateway_error_not_not_paid_yet(client, auth, session, xorpay, settings):
    user = UserFactory()
    order = PaymentFactory(user=user)
    xorpay.query2_answers("sign_error")
    report = reconcile(session, xorpay.client, settings=settings)
    assert (report.checked, report.errors) == (1, 1)
    auth.login(user)
    page = client.post(
        f"/recharge/{order.id}/check", data={"csrf_token": auth.csrf_token("/")}, follow_redirects=True
    ).get_data(as_text=True)
    assert "签名" in page  # "the payment service rejected our signature"
    session.refresh(order)
    assert order.status == "pending"
