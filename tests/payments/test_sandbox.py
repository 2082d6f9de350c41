"""The XorPay sandbox over real HTTP: create -> pay page -> signed notify -> credited; query2; refund
with its answers and its timeout switch; a lost notify; fields in the query string; bad prices."""

import re
import time
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import select, update

from ledger.models import BillingAccount, PaymentTransaction, Refund, User
from ledger.services.books.invariants import find_breaches
from ledger.services.context import SYSTEM
from ledger.services.payments.xorpay import GatewayError, XorPayClient, sign
from ledger.services.people.sign_in import register_user
from tests.helpers import XORPAY_AID, XORPAY_SECRET, csrf_token_in

pytestmark = pytest.mark.committed


@pytest.fixture
def person(committed):
    with committed.session() as session:
        return register_user(session, email="sandbox-payer@example.com", password="sandbox-password", ctx=SYSTEM)


def signed_in(live_server, email="sandbox-payer@example.com", password="sandbox-password") -> requests.Session:
    browser = requests.Session()
    token = csrf_token_in(browser.get(f"{live_server.url}/login").text)
    browser.post(f"{live_server.url}/login", data={"email": email, "password": password, "csrf_token": token})
    # Signing in starts a new session, with a new token.
    browser.headers["X-CSRFToken"] = csrf_token_in(browser.get(f"{live_server.url}/").text)
    return browser


def csrf_of(browser, url) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', browser.get(url).text).group(1)


def sandbox_of(live_server, secret: str = XORPAY_SECRET, timeout=(3.05, 10)) -> XorPayClient:
    return XorPayClient(f"{live_server.url}/sandbox/xorpay", XORPAY_AID, secret, timeout=timeout)


def post_to_sandbox(live_server, path: str, *, query: dict | None = None, body: dict | None = None) -> dict:
    """A raw call to the sandbox's API, its fields where a test puts them; its JSON answer."""
    url = f"{live_server.url}/sandbox/xorpay{path}" + (f"?{urlencode(query)}" if query else "")
    return requests.post(url, data=body, timeout=10).json()


def signed_create(**fields: str) -> dict[str, str]:
    order = {
        "name": "t",
        "pay_type": "alipay",
        "price": "5.00",
        "order_id": "o-1",
        "notify_url": "http://x/n",
        **fields,
    }
    return {**order, "sign": sign(*order.values(), XORPAY_SECRET)}


def set_switches(browser: requests.Session, base: str, **switches: str) -> None:
    """Turn the sandbox's switches on its own page: refund="timeout", notify="lost"."""
    page = f"{base}/sandbox/xorpay/"
    browser.post(f"{page}switches", data={"csrf_token": csrf_of(browser, page), **switches})


def paid_order(live_server, browser, amount: str, pay_type: str = "alipay") -> dict:
    """A top-up made through our API and paid on the sandbox's page (notify acknowledged: `success`)."""
    order = browser.post(f"{live_server.url}/api/payments/create", json={"amount": amount, "pay_type": pay_type}).json()
    paid = browser.post(order["qr"], data={"csrf_token": csrf_of(browser, order["qr"])})
    assert "HTTP 200 ok" in paid.text
    return order


def aoid_of(committed, transaction_id: str) -> str:
    with committed.session() as session:
        return session.get(PaymentTransaction, transaction_id).provider_order_id


def test_top_up_through_the_sandbox_credits_the_balance(committed, live_server, person):
    browser = signed_in(live_server)
    created = browser.post(f"{live_server.url}/api/payments/create", json={"amount": "66.60"})
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["qr"].startswith(f"{live_server.url}/sandbox/xorpay/pay/")

    pay_page = browser.get(order["qr"])
    assert "¥66.60" in pay_page.text and "支付宝" in pay_page.text
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
    assert again.status_code == 409 and 'data-testid="sandbox-paid"' in again.text
    with committed.session() as session:
        assert session.get(BillingAccount, person.id).balance == Decimal("66.60")


def test_a_wechat_top_up_through_the_sandbox_credits_the_balance(committed, live_server, person):
    browser = signed_in(live_server)
    order = browser.post(f"{live_server.url}/api/payments/create", json={"amount": "1500.00", "pay_type": "native"})
    assert order.status_code == 201, order.text
    assert order.json()["pay_type"] == "native"
    pay_url = order.json()["qr"]
    assert "微信支付" in browser.get(pay_url).text
    paid = browser.post(pay_url, data={"csrf_token": csrf_of(browser, pay_url)})
    assert "HTTP 200 ok" in paid.text
    with committed.session() as session:
        assert session.get(BillingAccount, person.id).balance == Decimal("1500.00")
        stored = session.scalars(select(PaymentTransaction)).one()
        assert (stored.pay_type, stored.status, stored.meta["detail"]["bank_type"]) == ("native", "succeeded", "CFT")


def test_sandbox_speaks_query2_and_create_answers(committed, live_server):
    gateway = sandbox_of(live_server)
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
    with pytest.raises(GatewayError) as other:
        gateway.create(**{**order, "price": "6.00"})
    assert other.value.gateway_status == "order_exist"
    with pytest.raises(GatewayError) as wrong:
        sandbox_of(live_server, secret="wrong-secret").create(**{**order, "order_id": "x"})
    assert wrong.value.gateway_status == "sign_error"
    with pytest.raises(GatewayError) as wrong_query:
        sandbox_of(live_server, secret="wrong-secret").query2("sandbox-order-1")
    assert wrong_query.value.gateway_status == "sign_error"
    # Each channel's limit for one payment: Alipay 1,000, WeChat Pay 20,000.
    with pytest.raises(GatewayError) as alipay_limit:
        gateway.create(**{**order, "order_id": "big-alipay", "price": "1000.01"})
    assert alipay_limit.value.gateway_status == "alipay_api_error"
    assert gateway.create(**{**order, "order_id": "big-wechat", "pay_type": "native", "price": "20000.00"}).aoid
    with pytest.raises(GatewayError) as wechat_limit:
        gateway.create(**{**order, "order_id": "bigger-wechat", "pay_type": "native", "price": "20000.01"})
    assert wechat_limit.value.gateway_status == "wechat_api_error"


@pytest.mark.parametrize("price", ["5", "5.5", "5.000", "-5.00", "0.00", "abc", "５.００", "1e3", " 5.00"])
def test_a_malformed_price_is_a_missing_argument_not_a_fee_error(committed, live_server, price):
    answer = post_to_sandbox(live_server, f"/api/pay/{XORPAY_AID}", body=signed_create(price=price))
    assert answer["status"] == "missing_argument" and "50.00" in answer["info"]
    # The client says so, rather than "the payment service cannot accept payments" (fee_error).
    with pytest.raises(GatewayError) as refused:
        sandbox_of(live_server).create(
            name="t", pay_type="alipay", price=price, order_id="o", notify_url="u", expire=60
        )
    assert refused.value.gateway_status == "missing_argument"


def test_fields_in_the_query_string_are_taken_as_xorpays_node_demo_sends_them(committed, live_server):
    fields = signed_create(name="订阅", pay_type="native", price="100.00", order_id="demo-00004")
    created = post_to_sandbox(live_server, f"/api/pay/{XORPAY_AID}", query=fields)  # an empty body
    assert created["status"] == "ok", created
    # Body and query string may also share the fields.
    in_both = post_to_sandbox(live_server, f"/api/pay/{XORPAY_AID}", query={"sign": fields["sign"]}, body=fields)
    assert (in_both["status"], in_both["aoid"]) == ("ok", created["aoid"])
    # A refund with its fields in the URL: the order is unpaid, so order_error (not missing_argument).
    refund = {"price": "1.00", "sign": sign("1.00", XORPAY_SECRET)}
    assert post_to_sandbox(live_server, f"/api/refund/{created['aoid']}", query=refund)["status"] == "order_error"
    # Missing fields are still missing.
    assert post_to_sandbox(live_server, f"/api/pay/{XORPAY_AID}", query={"name": "x"})["status"] == "missing_argument"


def test_refund_answers_as_xorpay_does(committed, live_server, person):
    browser = signed_in(live_server)
    order = paid_order(live_server, browser, "30.00")
    aoid = aoid_of(committed, order["transaction_id"])
    gateway = sandbox_of(live_server)

    with pytest.raises(GatewayError) as bad_sign:
        sandbox_of(live_server, secret="wrong-secret").refund(aoid, "1.00")
    assert bad_sign.value.gateway_status == "sign_error"
    with pytest.raises(GatewayError) as unknown:
        gateway.refund("no-such-aoid", "1.00")
    assert unknown.value.gateway_status == "order_error"
    gateway.refund(aoid, "10.00")  # ok
    gateway.refund(aoid, "15.00")  # ok: partial refunds add up
    with pytest.raises(GatewayError) as too_much:
        gateway.refund(aoid, "5.01")  # 25.00 of 30.00 refunded
    assert too_much.value.gateway_status == "price_error"
    with pytest.raises(GatewayError) as malformed:
        gateway.refund(aoid, "5")
    assert malformed.value.gateway_status == "price_error"
    gateway.refund(aoid, "5.00")
    assert "已退款 ¥5.00" in browser.get(order["qr"]).text


def test_an_order_takes_at_most_50_refunds(committed, live_server, person):
    browser = signed_in(live_server)
    order = paid_order(live_server, browser, "60.00")
    aoid = aoid_of(committed, order["transaction_id"])
    gateway = sandbox_of(live_server)
    for _ in range(50):
        gateway.refund(aoid, "1.00")
    with pytest.raises(GatewayError) as refused:
        gateway.refund(aoid, "1.00")  # 10.00 is left, but this would be the 51st
    assert refused.value.gateway_status == "order_error"


def test_a_lost_notify_leaves_the_order_payed_check_now_credits_it_and_a_refund_is_order_error(
    committed, live_server, person
):
    browser = signed_in(live_server)
    set_switches(browser, live_server.url, notify="lost")
    order = browser.post(f"{live_server.url}/api/payments/create", json={"amount": "12.00"}).json()
    paid = browser.post(order["qr"], data={"csrf_token": csrf_of(browser, order["qr"])})
    assert "not sent" in paid.text
    assert browser.get(f"{live_server.url}/api/payments/{order['transaction_id']}").json()["status"] == "pending"
    gateway = sandbox_of(live_server)
    assert gateway.query2(order["transaction_id"]) == "payed"

    page = f"{live_server.url}/recharge/{order['transaction_id']}"
    browser.post(f"{page}/check", data={"csrf_token": csrf_of(browser, page)})

    assert browser.get(f"{live_server.url}/api/payments/{order['transaction_id']}").json()["status"] == "succeeded"
    with committed.session() as session:
        assert session.get(BillingAccount, person.id).balance == Decimal("12.00")
    # XorPay refunds only an order whose notify was acknowledged (`success`), not one only `payed`.
    with pytest.raises(GatewayError) as refused:
        gateway.refund(aoid_of(committed, order["transaction_id"]), "1.00")
    assert refused.value.gateway_status == "order_error"
    # The switch acted once: the next payment notifies as usual.
    paid_order(live_server, browser, "3.00")


def test_the_refund_timeout_switch_makes_the_next_refund_time_out_once(committed, live_server, person, monkeypatch):
    # The sandbox waits past this app's own client read timeout: made short here for a quick test.
    monkeypatch.setattr(live_server.app.extensions["ledger.xorpay"], "timeout", (1, 1))
    browser = signed_in(live_server)
    order = paid_order(live_server, browser, "20.00")
    aoid = aoid_of(committed, order["transaction_id"])
    set_switches(browser, live_server.url, refund="timeout")
    assert 'id="refund-timeout" checked' in browser.get(f"{live_server.url}/sandbox/xorpay/").text
    gateway = sandbox_of(live_server, timeout=(1, 1))

    started = time.monotonic()
    with pytest.raises(GatewayError) as timed_out:
        gateway.refund(aoid, "5.00")
    assert timed_out.value.gateway_status == "timeout" and time.monotonic() - started < 1.9
    # The sandbox made the refund (its answer came too late): the admin sees it there.
    assert 'data-testid="sandbox-refund-timeout"' in browser.get(order["qr"]).text
    assert 'id="refund-timeout" checked' not in browser.get(f"{live_server.url}/sandbox/xorpay/").text
    gateway.refund(aoid, "15.00")  # once only: the next refund answers ok, at once
    with pytest.raises(GatewayError) as nothing_left:
        gateway.refund(aoid, "0.01")
    assert nothing_left.value.gateway_status == "price_error"


def test_an_admins_refund_that_times_out_in_the_sandbox_stays_pending(committed, live_server, person, monkeypatch):
    """The path the switch is for, as an admin sees it: the money stays held, the refund pending."""
    monkeypatch.setattr(live_server.app.extensions["ledger.xorpay"], "timeout", (1, 1))
    order = paid_order(live_server, signed_in(live_server), "20.00")
    with committed.session() as session:
        admin = register_user(session, email="sandbox-admin@example.com", password="admin-password", ctx=SYSTEM)
        session.execute(update(User).where(User.id == admin.id).values(is_admin=True))
        session.commit()
    back_office = signed_in(live_server, "sandbox-admin@example.com", "admin-password")
    page = f"{live_server.url}/admin/orders/{order['transaction_id']}"
    assert 'data-testid="sandbox-switches-link"' in back_office.get(page).text
    set_switches(back_office, live_server.url, refund="timeout")

    fields = {
        "amount": "5.00",
        "reason": "sandbox timeout",
        "confirmed": "yes",
        "csrf_token": csrf_of(back_office, page),
    }
    back_office.post(f"{page}/refund", data=fields)

    with committed.session() as session:
        refund = session.scalars(select(Refund)).one()
        assert (refund.status, refund.gateway_answer["status"]) == ("pending", "timeout")
        assert session.get(BillingAccount, person.id).held == Decimal("5.00")
    assert 'data-testid="resolve-succeeded"' in back_office.get(page).text


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
