"""/recharge pages: amounts as people type them, "check now" asks XorPay and credits a paid order;
others' orders are 404."""

import re
from dataclasses import replace
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.models import PaymentTransaction
from ledger.services.books.accounts import adjust_balance
from ledger.services.context import SYSTEM
from ledger.services.payments.settlement import reconcile
from ledger.services.payments.xorpay import sign
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import XORPAY_SECRET, at, balance_of, kinds_line, post_form, settle_by_notify, stop_the_clock


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
    report = reconcile(session, SYSTEM.using(settings), xorpay.client)
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


@pytest.mark.parametrize("typed", ["0.50", "0", "0.00"])
def test_recharge_refuses_an_amount_saying_what_is_allowed(client, auth, session, xorpay, typed):
    auth.login(UserFactory())
    response = post_form(client, auth, "/recharge", "/recharge", amount="50", custom_amount=typed)
    assert response.status_code == 422
    assert "请输入 ¥1.00 到 ¥1,000.00 之间的金额，最多两位小数。" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(PaymentTransaction)) == 0
    # the refusal takes the focus after the post (keyboard and screen reader start from it)
    assert 'data-testid="recharge-error" tabindex="-1" autofocus>' in response.get_data(as_text=True)


# --- Alipay or WeChat Pay -----------------------------------------------------------------------------


def in_english(client) -> None:
    client.get("/lang/en?next=/")


def test_recharge_offers_alipay_by_default_and_wechat_pay_with_their_limits(client, auth, session):
    auth.login(UserFactory())
    page = client.get("/recharge").get_data(as_text=True)
    assert re.search(r'id="method-alipay" value="alipay"[^>]*checked', page)
    assert not re.search(r'id="method-native" value="native"[^>]*checked', page)
    assert "单笔最多 ¥1,000.00" in page and "单笔最多 ¥20,000.00" in page and "微信支付" in page
    in_english(client)
    page = client.get("/recharge").get_data(as_text=True)
    assert "Up to ¥1,000.00 a payment" in page and "Up to ¥20,000.00 a payment" in page and "WeChat Pay" in page
    assert "On a phone, choose Alipay" in page


def test_recharge_with_wechat_pay_sends_native(client, auth, session, xorpay):
    auth.login(UserFactory())
    xorpay.create_ok()
    response = post_form(client, auth, "/recharge", "/recharge", amount="50", custom_amount="1500", pay_type="native")
    assert response.status_code == 302
    assert xorpay.sent_forms()[-1]["pay_type"] == "native"
    assert session.scalars(select(PaymentTransaction.pay_type)).one() == "native"


@pytest.mark.parametrize(
    ("pay_type", "typed", "chinese", "english"),
    [
        (
            "alipay",
            "1000.01",
            "支付宝单笔最多 ¥1,000.00：请选择微信支付（单笔最多 ¥20,000.00），或分几次充值。",
            "Alipay takes at most ¥1,000.00 a payment: choose WeChat Pay (up to ¥20,000.00), or pay in parts.",
        ),
        (
            "native",
            "20000.01",
            "微信支付单笔最多 ¥20,000.00：请分几次充值。",
            "WeChat Pay takes at most ¥20,000.00 a payment: top up in several payments.",
        ),
    ],
)
def test_an_amount_above_the_methods_limit_says_so(client, auth, session, xorpay, pay_type, typed, chinese, english):
    auth.login(UserFactory())
    refused = post_form(client, auth, "/recharge", "/recharge", amount="50", custom_amount=typed, pay_type=pay_type)
    assert refused.status_code == 422 and chinese in refused.get_data(as_text=True)
    in_english(client)
    refused = post_form(client, auth, "/recharge", "/recharge", amount="50", custom_amount=typed, pay_type=pay_type)
    assert refused.status_code == 422 and english in refused.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(PaymentTransaction)) == 0
    assert xorpay.server.log == []


def test_recharge_refuses_an_unknown_method(client, auth, session, xorpay):
    auth.login(UserFactory())
    refused = post_form(client, auth, "/recharge", "/recharge", amount="50", pay_type="unionpay")
    assert refused.status_code == 422 and "请选择支付宝或微信支付。" in refused.get_data(as_text=True)
    assert xorpay.server.log == []


def test_the_qr_page_says_which_app_scans_it(client, auth, session):
    user = UserFactory()
    alipay = PaymentFactory(user=user)
    wechat = PaymentFactory(user=user, pay_type="native", meta={"qr": "weixin://wxpay/bizpayurl?pr=x"})
    auth.login(user)
    page = client.get(f"/recharge/{alipay.id}").get_data(as_text=True)
    assert "请使用支付宝扫码付款。" in page and 'data-testid="open-alipay"' in page
    assert 'data-testid="wechat-phone-warning"' not in page
    page = client.get(f"/recharge/{wechat.id}").get_data(as_text=True)
    assert "请使用微信扫码付款。" in page and 'data-testid="open-alipay"' not in page
    assert "微信无法从相册或截图识别此二维码，长按也无法识别。" in page
    in_english(client)
    page = client.get(f"/recharge/{wechat.id}").get_data(as_text=True)
    assert "Scan with WeChat to pay." in page
    assert "WeChat cannot read this code from your photo album or a screenshot, nor by a long press." in page
    assert "open this page on a computer" in page
    assert "Scan with Alipay to pay." in client.get(f"/recharge/{alipay.id}").get_data(as_text=True)


def test_the_history_and_the_dashboard_show_the_method(client, auth, session):
    user = UserFactory()
    PaymentFactory(user=user, status="expired")
    PaymentFactory(user=user, pay_type="native", status="expired")
    auth.login(user)
    for path in ("/recharge", "/"):
        page = client.get(path).get_data(as_text=True)
        assert 'data-pay-type="native">微信支付' in page and 'data-pay-type="alipay">支付宝' in page


# --- the pay button, amounts as typed, the way back to an order ---------------------------------


def pay_button(page: str) -> str:
    return re.search(r'data-testid="recharge-submit"[^>]*>(.*?)</button>', page, re.S).group(1).strip()


def test_the_pay_button_names_the_default_amount_and_method_without_javascript(client, auth, session):
    auth.login(UserFactory())
    page = client.get("/recharge").get_data(as_text=True)
    assert pay_button(page) == "支付宝支付 ¥50.00"
    assert 'data-label-native="微信支付 ¥{amount}"' in page
    in_english(client)
    page = client.get("/recharge").get_data(as_text=True)
    assert pay_button(page) == "Pay ¥50.00 with Alipay"
    assert 'data-label-native="Pay ¥{amount} with WeChat Pay"' in page


def test_a_refused_form_names_what_was_typed_and_checks_no_preset(client, auth, session, xorpay):
    auth.login(UserFactory())
    refused = post_form(
        client, auth, "/recharge", "/recharge", amount="50", custom_amount="1,500元", pay_type="alipay"
    ).get_data(as_text=True)
    assert pay_button(refused) == "支付宝支付 ¥1,500.00"
    assert not re.search(r'id="preset-50"[^>]*checked', refused)
    in_english(client)
    refused = post_form(
        client, auth, "/recharge", "/recharge", amount="50", custom_amount="30000", pay_type="native"
    ).get_data(as_text=True)
    assert pay_button(refused) == "Pay ¥30,000.00 with WeChat Pay"


@pytest.mark.parametrize(
    ("typed", "chinese", "english"),
    [
        (
            "五十",
            "请用数字输入金额，例如 50 或 30.50（¥1.00 到 ¥1,000.00）。",
            "Type the amount in digits, such as 50 or 30.50 (from ¥1.00 to ¥1,000.00).",
        ),
        (
            "5e1",
            "请用数字输入金额，例如 50 或 30.50（¥1.00 到 ¥1,000.00）。",
            "Type the amount in digits, such as 50 or 30.50 (from ¥1.00 to ¥1,000.00).",
        ),
        (
            "12.345元",
            "金额最多两位小数（精确到分），例如 30.50。",
            "Amounts go down to the fen: at most 2 decimals, such as 30.50.",
        ),
        (
            "0.50",
            "请输入 ¥1.00 到 ¥1,000.00 之间的金额，最多两位小数。",
            "Enter an amount from ¥1.00 to ¥1,000.00 with at most 2 decimals.",
        ),
    ],
)
def test_an_amount_that_is_not_one_is_explained(client, auth, session, xorpay, typed, chinese, english):
    auth.login(UserFactory())
    refused = post_form(client, auth, "/recharge", "/recharge", amount="50", custom_amount=typed)
    assert refused.status_code == 422 and chinese in refused.get_data(as_text=True)
    in_english(client)
    refused = post_form(client, auth, "/recharge", "/recharge", amount="50", custom_amount=typed)
    assert refused.status_code == 422 and english in refused.get_data(as_text=True)
    assert xorpay.server.log == []


def test_no_preset_and_nothing_typed_asks_for_an_amount(client, auth, session, xorpay):
    auth.login(UserFactory())
    refused = post_form(client, auth, "/recharge", "/recharge", custom_amount="")
    assert refused.status_code == 422 and "请选择或输入充值金额。" in refused.get_data(as_text=True)
    assert pay_button(refused.get_data(as_text=True)) == "支付宝支付"
    in_english(client)
    refused = post_form(client, auth, "/recharge", "/recharge", custom_amount="", pay_type="native")
    assert "Choose an amount or type one." in refused.get_data(as_text=True)
    assert pay_button(refused.get_data(as_text=True)) == "Pay with WeChat Pay"


@pytest.mark.parametrize(("typed", "price"), [(" 50 ", "50.00"), ("50.5元", "50.50"), ("1,000", "1000.00")])
def test_spaces_yuan_and_thousands_are_read_as_meant(client, auth, session, xorpay, typed, price):
    auth.login(UserFactory())
    xorpay.create_ok()
    response = post_form(client, auth, "/recharge", "/recharge", amount="10", custom_amount=typed)
    assert response.status_code == 302 and xorpay.sent_forms()[-1]["price"] == price


def test_every_order_can_be_reopened_on_a_phone_from_the_history_and_the_dashboard(client, auth, session):
    user = UserFactory()
    unpaid, paid = PaymentFactory(user=user), PaymentFactory(user=user, status="expired")
    auth.login(user)
    for path in ("/recharge", "/"):
        page = client.get(path).get_data(as_text=True)
        links = re.findall(
            r'<a class="[^"]*d-block[^"]*" href="/recharge/([^"]+)" data-testid="reopen-order">([^<]*)</a>', page
        )
        assert sorted(links) == sorted([(str(unpaid.id), "去支付"), (str(paid.id), "详情")])
    in_english(client)
    page = client.get("/recharge").get_data(as_text=True)
    assert f'href="/recharge/{unpaid.id}" data-testid="reopen-order">Pay now</a>' in page
    assert f'href="/recharge/{paid.id}" data-testid="reopen-order">Details</a>' in page


def test_the_alipay_order_page_links_to_the_payment_on_a_phone_and_in_a_new_window(client, auth, session):
    user = UserFactory()
    alipay = PaymentFactory(user=user, meta={"qr": "https://qr.alipay.com/bax01"})
    wechat = PaymentFactory(user=user, pay_type="native", meta={"qr": "weixin://wxpay/bizpayurl?pr=x"})
    auth.login(user)
    page = client.get(f"/recharge/{alipay.id}").get_data(as_text=True)
    assert 'href="https://qr.alipay.com/bax01" data-testid="open-alipay">在本机打开支付宝</a>' in page
    assert (
        '<a href="https://qr.alipay.com/bax01" target="_blank" rel="noopener noreferrer" '
        'data-testid="open-alipay-window">或在新窗口打开支付宝付款页面</a>'
    ) in page
    assert "open-alipay-window" not in client.get(f"/recharge/{wechat.id}").get_data(as_text=True)
    in_english(client)
    page = client.get(f"/recharge/{alipay.id}").get_data(as_text=True)
    assert """data-testid="open-alipay-window">Or pay on Alipay's page in a new window</a>""" in page


def test_the_dashboard_lists_top_ups_in_its_narrow_card_without_the_cut_off_order_column(client, auth, session):
    user = UserFactory()
    PaymentFactory(user=user)
    auth.login(user)
    dashboard, history = client.get("/").get_data(as_text=True), client.get("/recharge").get_data(as_text=True)
    assert '<th class="d-none">订单</th>' in dashboard and '<th class="d-none d-md-table-cell">订单</th>' in history
    assert '<a class="d-block small text-nowrap"' in dashboard  # "去支付" at every width


# --- the balance, by kind of money (SPEC 20) --------------------------------------------------------


def test_the_recharge_page_shows_the_balance_and_how_much_of_it_is_given_and_until_when(
    client, auth, session, app, monkeypatch, settings
):
    now = stop_the_clock(app, monkeypatch, at("2026-12-01 10:00"))
    user = UserFactory()
    settle_by_notify(session, PaymentFactory(user=user, amount=Decimal("20.00")), settings)
    adjust_balance(
        session,
        user_id=user.id,
        amount=Decimal("5.00"),
        memo="gift",
        ctx=replace(SYSTEM, clock=lambda: now),
        expires_at=at("2027-01-31 23:59:59"),
    )
    auth.login(user)
    page = client.get("/recharge").get_data(as_text=True)
    shown = page[page.index('data-testid="recharge-balance"') :]
    assert '<div class="small text-body-secondary">当前余额</div>' in shown
    assert 'data-testid="balance"><span class="money">¥25.00</span>' in shown
    assert kinds_line(shown) == "其中充值 ¥20.00、赠送 ¥5.00；¥5.00 于 2027-01-31 到期"
    in_english(client)
    page = client.get("/recharge").get_data(as_text=True)
    assert '<div class="small text-body-secondary">Current balance</div>' in page
    assert kinds_line(page) == "Of which ¥20.00 paid, ¥5.00 given; ¥5.00 expires on 2027-01-31"
    assert 'title="Balance · Of which ¥20.00 paid, ¥5.00 given; ¥5.00 expires on 2027-01-31"' in page  # the header's


def test_a_person_without_money_sees_a_zero_balance_and_no_breakdown(client, auth, session):
    auth.login(UserFactory())
    page = client.get("/recharge").get_data(as_text=True)
    assert 'data-testid="balance"><span class="money">¥0.00</span>' in page
    assert 'data-testid="balance-kinds"' not in page
