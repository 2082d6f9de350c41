"""The payments service: the order status machine and a top-up order as XorPay is asked to open it."""

from dataclasses import replace

import pytest

from ledger.models import IllegalTransition, PaymentStatus, PaymentTransaction
from ledger.services.context import SYSTEM
from ledger.services.payments.orders import create_topup
from tests.factories import UserFactory


def test_status_machine_refuses_moves_out_of_succeeded():
    order = PaymentTransaction(status=PaymentStatus.SUCCEEDED)
    for status in PaymentStatus:
        with pytest.raises(IllegalTransition):
            order.move_to(status)
    with pytest.raises(IllegalTransition):
        PaymentTransaction(status=PaymentStatus.EXPIRED).move_to(PaymentStatus.PENDING)


def test_the_payers_screen_names_the_site(session, xorpay, settings):
    """XorPay shows the order's name on the Alipay / WeChat screen and in the payer's bill: SITE_NAME."""
    xorpay.create_ok(aoid="aoid-1", qr="https://qr.alipay.com/x")
    branded = replace(settings, SITE_NAME="像素工坊")
    create_topup(session, xorpay.client, user=UserFactory(), amount="12.50", ctx=SYSTEM.using(branded))
    assert xorpay.sent_forms()[-1]["name"] == "像素工坊 余额充值 ¥12.50"
