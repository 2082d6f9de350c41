"""The XorPay sandbox over real HTTP: create -> pay page -> signed notify -> credited; query2; refund."""

import re
from decimal import Decimal

import pytest
import requests
from sqlalchemy import select

from ledger.models import BillingAccount, PaymentTransaction
from ledger.services.accounts import register_user
from ledger.services.audit import SYSTEM
from ledger.services.integrity import find_breaches
from ledger.services.xorpay import XorPayClient
from tests.helpers import XORPAY_AID, XORPAY_SECRET, csrf_token_in

pytestmark = pytest.mark.committed


@pytest.fixture
def person(committed):
    with committed.session() as session:
        return register_user(session, email="sandbox-payer@example.com", password="sandbox-password", origin=SYSTEM)


def signed_in(live_server, email="sandbox-payer@example.com", password="sandbox-password") -> requests.Session:
    browser = requests.Session()
    token = csrf_token_in(browser.get(f"{live_server.url}/login").text)
    browser.post(f"{live_server.url}/login", data={"email": email, "password": password, "csrf_token": token})
    # Signing in starts a new session, with a new token.
    browser.headers["X-CSRFToken"] = csrf_token_in(browser.get(f"{live_server.url}/").text)
    return browser


def csrf_of(browser, url) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', browser.get(url).text).group(1)


def test_top_up_through_the_sandbox_credits_the_balance(committed, live_server, person):
    browser = signed_in(live_server)
    created = browser.post(f"{live_server.url}/api/payments/create", json={"amount": "66.60"})
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["qr"].startswith(f"{live_server.url}/sandbox/xorpay/pay/")

    pay_page = browser.get(order["qr"])
    assert "¥66.60" in pay_page.text
    paid = browser.post(order["qr"], data={"csrf_token": csrf_of(browser, order["qr"])})
    assert paid.status_code == 200 and "HTTP 200 ok" in paid.text

    status = browser.get(f"{live_server.url}/api/payments/{order['transaction_id']}").json()
    assert status["status"] == "succeeded" and status["paid_at"] is not None
    with committed.session() as session:
        assert session.get(BillingAccount, person.id).balance == Decimal("66.60")
        stored = session.scalars(select(PaymentTransaction)).one()
        assert stored.meta["confirmed_by"] == "notify" and stored.meta["detail"]["bank_type"] == "ALIPAY"
        assert list(find_breaches(session)) == []

    # Paying twice is refused by the gateway.
    token = csrf_token_in(browser.get(f"{live_server.url}/").text)
    again = browser.post(order["qr"], data={"csrf_token": token})
    assert again.status_code == 409 and "Already paid" in again.text
    with committed.session() as session:
        assert session.get(BillingAccount, person.id).balance == Decimal("66.60")


def test_sandbox_speaks_query2_and_refund(committed, live_server, person):
    gateway = XorPayClient(f"{live_server.url}/sandbox/xorpay", XORPAY_AID, XORPAY_SECRET)
    order = {
        "name": "t",
        "pay_type": "alipay",
        "price": "5.00",
        "order_id": "sandbox-order-1",
        "notify_url": f"{live_server.url}/api/payments/webhook",
        "expire": 600,
    }
    created = gateway.create(**order)
    assert gateway.query2("sandbox-order-1") == "new"
    assert gateway.query2("no-such-order") == "not_exist"
    # The same order_id with other parameters is order_exist; with the same ones, the same order.
    assert gateway.create(**order).aoid == created.aoid
    with pytest.raises(Exception, match="other details"):
        gateway.create(**{**order, "price": "6.00"})
    wrong = XorPayClient(f"{live_server.url}/sandbox/xorpay", XORPAY_AID, "wrong-secret")
    with pytest.raises(Exception, match="signature"):
        wrong.create(**{**order, "order_id": "x"})
    with pytest.raises(Exception, match="refused"):
        gateway.refund(created.aoid, "1.00")  # not paid yet: order_error


def test_lost_notify_is_found_by_check_now(committed, live_server, person, monkeypatch):
    browser = signed_in(live_server)
    order = browser.post(f"{live_server.url}/api/payments/create", json={"amount": "12.00"}).json()
    # The notify goes nowhere (as if our server was down when XorPay called).
    from ledger.sandbox import routes

    monkeypatch.setattr(
        routes.SandboxOrder, "notify_url", property(lambda self: "http://127.0.0.1:9/lost"), raising=False
    )
    paid = browser.post(order["qr"], data={"csrf_token": csrf_of(browser, order["qr"])})
    assert "not delivered" in paid.text
    assert browser.get(f"{live_server.url}/api/payments/{order['transaction_id']}").json()["status"] == "pending"

    page = f"{live_server.url}/recharge/{order['transaction_id']}"
    browser.post(f"{page}/check", data={"csrf_token": csrf_of(browser, page)})

    assert browser.get(f"{live_server.url}/api/payments/{order['transaction_id']}").json()["status"] == "succeeded"
    with committed.session() as session:
        assert session.get(BillingAccount, person.id).balance == Decimal("12.00")


def test_sandbox_is_refused_in_production():
    from ledger.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="XORPAY_SANDBOX"):
        load_settings(
            {
                "LEDGER_ENV": "production",
                "XORPAY_SANDBOX": "1",
                "SECRET_KEY": "k",
                "INTERNAL_API_KEY": "i",
                "XORPAY_APP_SECRET": "x",
                "DATABASE_URL": "postgresql://db/ledger",
            },
            env_file=None,
        )
