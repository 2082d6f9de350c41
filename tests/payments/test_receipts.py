"""Records of top-ups: the printable receipt of a paid order, the CSV of all of a person's top-ups,
and full order ids wherever an order is shown."""

import re
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from ledger.models import Refund, User
from ledger.services.payments.refunds import refund_order
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import ADMIN, AuthActions, at, settle_by_notify


def paid_order(user, **fields):
    values = {
        "amount": Decimal("88.50"),
        "pay_type": "native",
        "status": "succeeded",
        "provider_order_id": "xp-aoid-20260305",
        "created_at": at("2026-03-05 14:05:00"),
        "paid_at": at("2026-03-05 14:07:09"),
    }
    return PaymentFactory(user=user, **(values | fields))


def receipt_text(page: str) -> str:
    """The receipt card's words, as a person reads them."""
    card = page[page.index('data-testid="receipt"') : page.index('class="receipt-actions')]
    card = card[card.index(">") + 1 : card.rindex("<div")]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", card)).strip()


def test_receipt_in_chinese_says_everything_about_the_payment(client, auth, session):
    user = UserFactory(email="receipt@example.com")
    order = paid_order(user)
    auth.login(user)
    response = client.get(f"/recharge/{order.id}/receipt")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<title>收据 " + str(order.id)[:8] + " · Ledger</title>" in page
    receipt = receipt_text(page)
    assert receipt == (
        f"收据 Ledger · http://ledger.test 预付余额充值，已全额支付。 "
        f"金额 ¥88.50 订单号 {order.id} 复制 支付方式 微信支付 "
        "支付时间 2026-03-05 14:07:09 （北京时间） XorPay 订单号 xp-aoid-20260305 账户 receipt@example.com"
    )
    assert '<code class="order-number user-select-all' in page
    assert 'href="/static/css/receipt.css?v=' in page  # its print CSS
    assert 'src="/static/js/print.js?v=' in page and "data-print hidden>打印</button>" in page


def test_receipt_in_english_and_in_the_persons_time_zone(client, auth, session):
    user = UserFactory(email="ny@example.com", timezone="America/New_York")
    order = paid_order(user, pay_type="alipay", amount=Decimal("1234.00"))
    auth.login(user)
    client.set_cookie("lang", "en")
    page = client.get(f"/recharge/{order.id}/receipt").get_data(as_text=True)
    receipt = receipt_text(page)
    assert receipt == (
        "Receipt Ledger · http://ledger.test Top-up of your prepaid balance, paid in full. "
        f"Amount ¥1,234.00 Order number {order.id} Copy Payment method Alipay "
        "Paid at 2026-03-05 01:07:09 (United States (New York) Time) XorPay order number xp-aoid-20260305 "
        "Account ny@example.com"
    )


def test_the_site_name_is_the_one_people_see_on_every_page_and_the_receipt(settings, database, session):
    from ledger import create_app

    branded = create_app(replace(settings, SITE_NAME="像素工坊 <Pixel>"), database).test_client()
    sign_in = branded.get("/login").get_data(as_text=True)
    assert "<title>登录 · 像素工坊 &lt;Pixel&gt;</title>" in sign_in
    assert '<h1 class="h3 fw-semibold">登录 像素工坊 &lt;Pixel&gt;</h1>' in sign_in
    assert "© 像素工坊 &lt;Pixel&gt; · " in sign_in and "Ledger" not in sign_in
    user = UserFactory()
    order = paid_order(user)
    AuthActions(branded).login(user)
    receipt = receipt_text(branded.get(f"/recharge/{order.id}/receipt").get_data(as_text=True))
    assert receipt.startswith("收据 像素工坊 &lt;Pixel&gt; · http://ledger.test 预付余额充值")


@pytest.fixture
def refunded(session, settings, xorpay):
    """A ¥50.00 top-up paid through a notify, ¥20.00 of it refunded (at a known time), ¥5.00 being
    refunded (XorPay's answer timed out) and ¥1.00 refused by XorPay."""
    order = PaymentFactory(user=UserFactory(), amount=Decimal("50.00"))
    order.owner = session.get(User, order.user_id)
    settle_by_notify(session, order, settings)
    xorpay.refund_answers("ok")
    made = refund_order(session, xorpay.client, ADMIN, order.id, "20.00", reason="asked")
    session.execute(update(Refund).where(Refund.id == made.id).values(settled_at=at("2026-03-06 10:00:00")))
    xorpay.server.clear_all_handlers()  # the first matching answer would answer again
    xorpay.refund_answers("order_error")
    refund_order(session, xorpay.client, ADMIN, order.id, "1.00", reason="refused")
    xorpay.server.clear_all_handlers()
    xorpay.refund_times_out()
    refund_order(session, xorpay.client, ADMIN, order.id, "5.00", reason="unknown")
    statuses = session.scalars(select(Refund.status).where(Refund.payment_transaction_id == order.id))
    assert sorted(statuses) == ["failed", "pending", "succeeded"]
    return order


def test_the_receipt_and_the_order_page_show_what_was_refunded(client, auth, session, refunded):
    auth.login(refunded.owner)
    receipt = receipt_text(client.get(f"/recharge/{refunded.id}/receipt").get_data(as_text=True))
    assert "退款 ¥20.00 · 2026-03-06 10:00:00 已退款 ¥5.00 · 退款处理中 XorPay 订单号" in receipt
    assert "¥1.00" not in receipt  # a refused refund changed nothing
    page = client.get(f"/recharge/{refunded.id}").get_data(as_text=True)
    block = page[page.index('data-testid="order-refunds"') : page.index("</ul>", page.index("order-refunds"))]
    words = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", block[block.index(">") + 1 :])).strip()
    assert (
        words == "退款 退款从你的余额中扣除，原路退回到你付款的账户。 2026-03-06 10:00 已退款 ¥20.00 退款处理中 ¥5.00"
    )
    client.set_cookie("lang", "en")
    receipt = receipt_text(client.get(f"/recharge/{refunded.id}/receipt").get_data(as_text=True))
    assert "Refunds ¥20.00 · Refunded on 2026-03-06 10:00:00 ¥5.00 · Being refunded XorPay order number" in receipt


def test_an_order_with_no_refund_made_or_pending_shows_none(client, auth, session, settings, xorpay):
    user = UserFactory()
    order = PaymentFactory(user=user)
    settle_by_notify(session, order, settings)
    xorpay.refund_answers("order_error")
    refund_order(session, xorpay.client, ADMIN, order.id, "1.00", reason="refused")
    auth.login(user)
    for path in [f"/recharge/{order.id}", f"/recharge/{order.id}/receipt"]:
        page = client.get(path).get_data(as_text=True)
        assert "refund" not in page.lower() and "退款" not in page, path


@pytest.mark.parametrize("status", ["pending", "expired", "failed"])
def test_no_receipt_for_an_unpaid_order(client, auth, session, status):
    user = UserFactory()
    order = PaymentFactory(user=user, status=status)
    auth.login(user)
    response = client.get(f"/recharge/{order.id}/receipt")
    assert response.status_code == 404
    assert "此订单没有收据：只有已支付的充值才有收据。" in response.get_data(as_text=True)
    assert "/receipt" not in client.get(f"/recharge/{order.id}").get_data(as_text=True)


def test_no_receipt_for_another_persons_order_or_a_malformed_id(client, auth, session):
    order = paid_order(UserFactory())
    auth.login(UserFactory())
    assert client.get(f"/recharge/{order.id}/receipt").status_code == 404
    assert client.get("/recharge/not-an-id/receipt").status_code == 404
    auth.logout()
    assert client.get(f"/recharge/{order.id}/receipt").status_code == 302  # to the sign-in page


def test_the_order_page_and_the_history_link_to_the_receipt(client, auth, session):
    user = UserFactory()
    paid, pending = paid_order(user), PaymentFactory(user=user)
    auth.login(user)
    order_page = client.get(f"/recharge/{paid.id}").get_data(as_text=True)
    assert f'href="/recharge/{paid.id}/receipt" data-testid="receipt-link">收据</a>' in order_page
    history = client.get("/recharge").get_data(as_text=True)
    assert history.count('data-testid="receipt-link"') == 1
    assert f'href="/recharge/{paid.id}/receipt"' in history
    assert f"/recharge/{pending.id}/receipt" not in history


def test_full_order_ids_are_on_the_order_page_and_in_the_history(client, auth, session):
    user = UserFactory()
    order = PaymentFactory(user=user)
    auth.login(user)
    order_page = client.get(f"/recharge/{order.id}").get_data(as_text=True)
    # The whole id, selectable with one click, and a copy button (shown by copy.js).
    assert re.search(
        rf'<code class="order-number user-select-all[^"]*" id="order-{order.id}" '
        rf'data-testid="order-number">{order.id}</code>',
        order_page,
    )
    assert f'data-copy="#order-{order.id}" hidden' in order_page
    assert 'src="/static/js/copy.js?v=' in order_page
    for path in ["/recharge", "/"]:
        page = client.get(path).get_data(as_text=True)
        # The cell shows 8 characters (CSS) of the whole id, which a selection copies.
        assert f'class="font-monospace order-id-short" title="{order.id}">{order.id}</a>' in page, path


CSV_HEADER = "\ufeffcreated_at,transaction_id,amount,pay_type,status,paid_at,provider_order_id\r\n"


def test_topups_csv_is_every_order_oldest_first_in_the_persons_zone(client, auth, session):
    user = UserFactory()
    first = paid_order(user, amount=Decimal("10.00"), pay_type="alipay", provider_order_id="aoid-1")
    second = PaymentFactory(
        user=user, amount=Decimal("0.50"), created_at=at("2026-03-06 09:00:00"), provider_order_id="=cmd|' /C calc'!A0"
    )
    PaymentFactory(user=UserFactory(), provider_order_id="someone-else")
    auth.login(user)
    response = client.get("/recharge/topups.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    today = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d")
    assert response.headers["Content-Disposition"] == f'attachment; filename="topups_{today}.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data == (
        CSV_HEADER
        + f"2026-03-05 14:05:00,{first.id},10.00,alipay,succeeded,2026-03-05 14:07:09,aoid-1\r\n"
        + f"2026-03-06 09:00:00,{second.id},0.50,alipay,pending,,'=cmd|' /C calc'!A0\r\n"
    ).encode("utf-8")


def test_topups_csv_in_another_zone_and_when_there_are_none(client, auth, session):
    user = UserFactory(timezone="Europe/London")
    auth.login(user)
    assert client.get("/recharge/topups.csv").data == CSV_HEADER.encode("utf-8")
    order = paid_order(user, pay_type="native", amount=Decimal("200.00"), provider_order_id=None)
    assert client.get("/recharge/topups.csv").data == (
        CSV_HEADER + f"2026-03-05 06:05:00,{order.id},200.00,native,succeeded,2026-03-05 06:07:09,\r\n"
    ).encode("utf-8")


def test_recharge_links_to_the_csv_in_both_languages(client, auth, session):
    auth.login(UserFactory())
    link = r'href="/recharge/topups.csv"[^>]*data-testid="topups-csv"[^>]*>\s*{}\s*<'
    assert re.search(link.format("下载 CSV"), client.get("/recharge").get_data(as_text=True))
    client.set_cookie("lang", "en")
    assert re.search(link.format("Download CSV"), client.get("/recharge").get_data(as_text=True))
