"""/recharge pages: amounts as people type them, "check now" asks XorPay and credits a paid order;
others' orders are 404."""

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.models import PaymentTransaction
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


@pytest.mark.parametrize(
    ("preset", "typed", "price"),
    [
        ("50", "", "50.00"),
        ("50", "５０", "50.00"),  # full-width digits, as a Chinese keyboard types them
        ("50", "50元", "50.00"),
        ("50", " ¥30 ", "30.00"),
        ("10", "１２．３４", "12.34"),
    ],
)
def test_recharge_takes_a_preset_or_what_a_person_typed(client, auth, session, xorpay, preset, typed, price):
    auth.login(UserFactory())
    xorpay.create_ok()
    response = post_form(client, auth, "/recharge", "/recharge", amount=preset, custom_amount=typed)
    assert response.status_code == 302
    assert xorpay.sent_forms()[-1]["price"] == price
    assert session.scalars(select(PaymentTransaction.amount)).one() == Decimal(price)


@pytest.mark.parametrize("typed", ["abc", "0.50", "1000.01", "1.005", "-5", "5e1", "1 000"])
def test_recharge_refuses_an_amount_saying_what_is_allowed(client, auth, session, xorpay, typed):
    auth.login(UserFactory())
    response = post_form(client, auth, "/recharge", "/recharge", amount="50", custom_amount=typed)
    assert response.status_code == 422
    assert "请输入 ¥1.00 到 ¥1,000.00 之间的金额，最多两位小数。" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(PaymentTransaction)) == 0
