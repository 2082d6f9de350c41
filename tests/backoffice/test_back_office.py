"""The back office (SPEC 13): admins only, every action confirmed, reasoned and audited."""

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from ledger.models import AuditLog, CreditLot, UsageLog, User, UserSession
from ledger.services.books.accounts import adjust_balance
from ledger.services.context import SYSTEM
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import at, balance_of, charge, kinds_line, post_form, settle_by_notify, text_of

PAGES = ["/admin", "/admin/users", "/admin/orders", "/admin/audit"]


@pytest.mark.parametrize("path", PAGES)
def test_the_back_office_does_not_exist_for_anyone_but_admins(client, auth, session, path):
    assert client.get(path).status_code == 404  # signed out
    auth.login(UserFactory())
    assert client.get(path).status_code == 404  # signed in, not an admin


# Every method on an action's path, and paths that do not exist: CSRF (400) and routing (405, 404)
# must not tell a non-admin which routes the back office has (SPEC 13).
PROBES = [
    ("GET", "/admin/users/x/adjust"),
    ("POST", "/admin/users/x/adjust"),
    ("PUT", "/admin/users/x/adjust"),
    ("DELETE", "/admin/orders/x/refund"),
    ("OPTIONS", "/admin/refunds/x/resolve"),
    ("POST", "/admin"),
    ("POST", "/admin/no-such-page"),
    ("GET", "/admin/"),
]


@pytest.mark.parametrize("method, path", PROBES)
def test_nobody_but_an_admin_can_map_the_back_office(client, auth, session, method, path):
    for who in ("signed out", "signed in"):
        if who == "signed in":
            auth.login(UserFactory())
        answer = client.open(path, method=method, data={"reason": "probe"})
        assert answer.status_code == 404, (who, method, path)
        assert answer.headers.get("Allow") is None, (who, method, path)


def test_an_admin_still_gets_routing_and_csrf_answers(client, admin_user, session):
    assert client.get("/admin/users/x/adjust").status_code == 405
    assert client.post("/admin/users/x/adjust", data={"reason": "probe"}).status_code == 400  # no CSRF token
    assert client.post("/admin/no-such-page").status_code == 404


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_page_of_the_back_office_answers(client, admin_user, session, language):
    client.set_cookie("lang", language)
    someone = UserFactory(balance="12.00", email="someone@example.com")
    order = PaymentFactory(user=someone)
    for path in [*PAGES, f"/admin/users/{someone.id}", f"/admin/orders/{order.id}", "/admin/users?q=someone"]:
        response = client.get(path)
        assert response.status_code == 200, path
    assert "someone@example.com" in client.get("/admin/users?q=SOMEONE").get_data(as_text=True)


def test_an_adjustment_is_confirmed_with_its_effect_then_done_and_audited(client, auth, admin_user, session):
    someone = UserFactory(balance="12.00")
    page = f"/admin/users/{someone.id}"
    fields = {"amount": "50.00", "reason": "goodwill for an outage"}
    shown = post_form(client, auth, f"{page}/adjust", page, **fields)
    assert shown.status_code == 200 and "¥12.00 → ¥62.00" in shown.get_data(as_text=True)
    assert balance_of(session, someone) == Decimal("12.00")  # nothing yet
    done = post_form(client, auth, f"{page}/adjust", page, **fields, confirmed="yes")
    assert done.status_code == 302
    assert balance_of(session, someone) == Decimal("62.00")
    by_admin = select(AuditLog).where(AuditLog.action == "balance.adjusted", AuditLog.actor == "admin")
    row = session.scalars(by_admin).one()
    assert (row.user_id, row.details["admin_id"]) == (someone.id, str(admin_user.id))
    assert row.details["reason"] == "goodwill for an outage"


def test_an_admin_credit_may_expire_at_its_own_instant_in_the_admins_time_zone(client, auth, admin_user, session):
    someone = UserFactory(balance="1.00")
    page = f"/admin/users/{someone.id}"
    fields = {"amount": "5.00", "reason": "a gift", "expires_at": "2099-01-31T23:59"}  # as datetime-local sends it
    shown = post_form(client, auth, f"{page}/adjust", page, **fields).get_data(as_text=True)
    assert "到期时间：2099-01-31 23:59。" in shown
    assert post_form(client, auth, f"{page}/adjust", page, **fields, confirmed="yes").status_code == 302
    lot = session.scalars(
        select(CreditLot).where(CreditLot.user_id == someone.id).order_by(CreditLot.id.desc())
    ).first()
    assert (lot.amount, lot.expires_at) == (Decimal("5.0000"), datetime(2099, 1, 31, 15, 59, tzinfo=UTC))
    past = post_form(client, auth, f"{page}/adjust", page, **{**fields, "expires_at": "2020-01-01T00:00"})
    assert past.status_code == 422 and "到期时间必须晚于现在" in past.get_data(as_text=True)
    debit = post_form(client, auth, f"{page}/adjust", page, **{**fields, "debit": "y"})
    assert debit.status_code == 422 and "只有加款可以设置到期时间" in debit.get_data(as_text=True)


def test_the_confirmation_names_the_action_and_the_trail_names_people_by_email(client, auth, admin_user, session):
    someone = UserFactory(balance="12.00", email="named@example.com")
    page = f"/admin/users/{someone.id}"
    shown = post_form(client, auth, f"{page}/adjust", page, amount="5.00", debit="y", reason="typo")
    assert "从 named@example.com 的余额扣减 ¥5.00。" in shown.get_data(as_text=True)
    post_form(client, auth, f"{page}/adjust", page, amount="5.00", debit="y", reason="typo", confirmed="yes")
    trail = client.get("/admin/audit").get_data(as_text=True)
    assert ">named@example.com</a>" in trail and f">{someone.id}</a>" not in trail
    post_form(client, auth, f"{page}/adjust", page, amount="1.00", reason="客服补偿", confirmed="yes")
    trail = client.get("/admin/audit").get_data(as_text=True)
    assert "客服补偿" in trail and "\\u5ba2" not in trail  # details read as written, not as \u escapes
    # A charge took the admin's own money below the threshold: the banner shows on their pages, not in the back office.
    adjust_balance(session, user_id=admin_user.id, amount=Decimal("12.00"), memo="own", ctx=SYSTEM)
    charge(session, admin_user, "3.00", "admin-own")  # 12 -> 9: below ¥10
    assert 'data-testid="low-balance"' in client.get("/usage").get_data(as_text=True)
    assert 'data-testid="low-balance"' not in client.get("/admin/audit").get_data(as_text=True)


def test_an_action_without_a_reason_or_beyond_the_available_amount_is_refused(client, auth, admin_user, session):
    someone = UserFactory(balance="12.00")
    page = f"/admin/users/{someone.id}"
    no_reason = post_form(client, auth, f"{page}/adjust", page, amount="5.00", reason="", confirmed="yes")
    assert no_reason.status_code == 422
    too_much = post_form(client, auth, f"{page}/adjust", page, amount="12.01", debit="y", reason="x", confirmed="yes")
    assert too_much.status_code == 402
    assert balance_of(session, someone) == Decimal("12.00")


def test_disabling_ends_sessions_and_the_person_can_no_longer_sign_in(client, auth, admin_user, session, app):
    from tests.helpers import AuthActions

    someone = UserFactory()
    theirs = AuthActions(app.test_client())
    theirs.login(someone)
    page = f"/admin/users/{someone.id}"
    assert post_form(client, auth, f"{page}/disable", page, reason="fraud", confirmed="yes").status_code == 302
    assert session.get(User, someone.id, populate_existing=True).disabled_at is not None
    assert theirs.client.get("/").status_code == 302  # signed out
    again = theirs.login(someone)
    assert again.status_code == 422 and "此账户已被停用" in again.get_data(as_text=True)  # on the form
    live = session.scalars(
        select(UserSession).where(UserSession.user_id == someone.id, UserSession.revoked_at.is_(None))
    )
    assert list(live) == []


def test_mark_paid_by_hand_credits_once_and_a_later_notify_changes_nothing(client, auth, admin_user, session):
    from tests.helpers import signed_notify

    order = PaymentFactory(user=UserFactory())
    page = f"/admin/orders/{order.id}"
    fields = {"trade_no": "2026112622001488", "reason": "receipt shown by the customer"}
    shown = post_form(client, auth, f"{page}/mark-paid", page, **fields)
    assert "¥0.00 → ¥50.00" in shown.get_data(as_text=True)
    assert post_form(client, auth, f"{page}/mark-paid", page, **fields, confirmed="yes").status_code == 302
    assert balance_of(session, order.user_id) == Decimal("50.00")
    late = client.post("/api/payments/webhook", data=signed_notify(order))
    assert (late.status_code, late.get_data(as_text=True)) == (200, "ok")
    assert balance_of(session, order.user_id) == Decimal("50.00")  # credited once
    again = post_form(client, auth, f"{page}/mark-paid", page, **fields, confirmed="yes")
    assert again.status_code == 422 and "这笔订单已付款" in again.get_data(as_text=True)
    marked = session.scalars(select(AuditLog).where(AuditLog.action == "payment.marked_paid")).one()
    assert marked.details["trade_no"] == "2026112622001488" and marked.actor == "admin"


def test_check_with_xorpay_credits_a_paid_order(client, auth, admin_user, session, xorpay):
    order = PaymentFactory(user=UserFactory())
    page = f"/admin/orders/{order.id}"
    xorpay.query2_answers("payed")
    assert (
        post_form(client, auth, f"{page}/check", page, reason="customer says paid", confirmed="yes").status_code == 302
    )
    assert balance_of(session, order.user_id) == Decimal("50.00")
    assert "订单状态为已支付" in client.get(page).get_data(as_text=True).replace(" ", "")  # a word, not "succeeded"


def test_a_refund_from_the_order_page_is_confirmed_and_made(client, auth, admin_user, session, xorpay, settings):
    from tests.helpers import settle_by_notify

    order = PaymentFactory(user=UserFactory())
    settle_by_notify(session, order, settings)
    page = f"/admin/orders/{order.id}"
    shown = post_form(client, auth, f"{page}/refund", page, amount="10.00", reason="duplicate")
    assert "¥50.00 → ¥40.00" in shown.get_data(as_text=True)
    xorpay.refund_answers("ok")
    assert (
        post_form(client, auth, f"{page}/refund", page, amount="10.00", reason="dup", confirmed="yes").status_code
        == 302
    )
    assert balance_of(session, order.user_id) == Decimal("40.00")
    assert 'data-testid="refund-status">已退款' in client.get(page).get_data(as_text=True)


def test_orders_show_and_filter_by_method(client, admin_user, session):
    someone = UserFactory(email="payer@example.com")
    alipay = PaymentFactory(user=someone)
    wechat = PaymentFactory(user=someone, pay_type="native")
    listed = client.get("/admin/orders").get_data(as_text=True)
    assert 'data-pay-type="native">微信支付' in listed and 'data-pay-type="alipay">支付宝' in listed
    only_wechat = client.get("/admin/orders?pay_type=native").get_data(as_text=True)
    assert str(wechat.id) in only_wechat and str(alipay.id) not in only_wechat
    client.set_cookie("lang", "en")
    assert 'data-pay-type="native">WeChat Pay' in client.get(f"/admin/orders/{wechat.id}").get_data(as_text=True)
    assert "WeChat Pay" in client.get(f"/admin/users/{someone.id}").get_data(as_text=True)


def test_the_overview_splits_top_ups_by_method(client, admin_user, session, settings):
    someone = UserFactory()
    settle_by_notify(session, PaymentFactory(user=someone), settings)
    settle_by_notify(session, PaymentFactory(user=someone, pay_type="native", amount=Decimal("1500.00")), settings)
    page = client.get("/admin").get_data(as_text=True)
    today = page.split('data-testid="topups-native"')[1]
    assert today.split("</li>")[0].endswith("¥1,500.00</span>")
    assert page.split('data-testid="topups-alipay"')[1].split("</li>")[0].endswith("¥50.00</span>")


def test_the_overview_counts_refused_notifies_of_the_last_day_by_address(client, admin_user, session):
    from tests.helpers import signed_notify

    forged = signed_notify(PaymentFactory(), secret="not-the-secret")
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        client.post("/api/payments/webhook", data=forged, environ_base={"REMOTE_ADDR": address})
    page = client.get("/admin").get_data(as_text=True)
    assert 'data-testid="refused-notifies">3<' in page and "来自 2 个地址" in page


def test_people_search_finds_a_name_by_its_folded_form(client, admin_user, session):
    person = UserFactory(username="Straße")
    found = client.get("/admin/users?q=STRASSE").get_data(as_text=True)
    assert str(person.id) in found


@pytest.mark.parametrize(
    "back, lands_on",
    [
        ("/admin/orders?status=pending", "/admin/orders?status=pending"),
        ("/admin/orders\r\nSet-Cookie: admin=1", "/admin/orders"),
        ("https://evil.example/admin/", "/admin/orders"),
        ("//evil.example/admin/", "/admin/orders"),
        ("/usage", "/admin/orders"),  # on this site, but not the back office
    ],
)
def test_resolving_a_refund_goes_back_only_to_a_back_office_page(
    client, auth, admin_user, session, xorpay, settings, back, lands_on
):
    from ledger.models import Refund
    from tests.helpers import settle_by_notify

    order = PaymentFactory(user=UserFactory())
    settle_by_notify(session, order, settings)
    page = f"/admin/orders/{order.id}"
    xorpay.refund_times_out()
    post_form(client, auth, f"{page}/refund", page, amount="10.00", reason="dup", confirmed="yes")
    refund = session.scalars(select(Refund).where(Refund.payment_transaction_id == order.id)).one()
    answer = post_form(
        client,
        auth,
        f"/admin/refunds/{refund.id}/resolve",
        page,
        outcome="failed",
        back=back,
        reason="not made at XorPay",
        confirmed="yes",
    )
    assert (answer.status_code, answer.headers["Location"]) == (302, lands_on)
    assert "Set-Cookie" not in answer.headers or "admin=1" not in answer.headers["Set-Cookie"]
    session.refresh(refund)
    assert refund.status == "failed"


def test_people_search_finds_look_alike_names_but_never_by_a_set_aside_key_s_id(client, admin_user, session):
    plain = UserFactory(username="admin")
    user_id = uuid.UUID("0000dead-beef-4000-8000-000000000000")  # migration 0017's "<key> <id>"
    set_aside = UserFactory(
        id=user_id, username="\u0251dmin", username_key=f"adrnin {user_id}", username_shape=f"adrnin {user_id}"
    )
    found = client.get("/admin/users?q=ADMIN").get_data(as_text=True)
    assert str(plain.id) in found and str(set_aside.id) in found
    assert str(set_aside.id) not in client.get("/admin/users?q=dead-beef").get_data(as_text=True)


# --- a person's credit lots and what drew them (SPEC 20) ----------------------------------------------


def lots_section(page: str) -> str:
    start = page.index('data-testid="person-lots"')
    return page[start : page.index("</ul>\n      \n", start)]


def lot_items(page: str) -> dict[int, str]:
    """Each lot of the person's page, by id, as text."""
    section = lots_section(page)
    items = re.findall(
        r'<li class="list-group-item" data-lot="(\d+)">(.*?)</li>\s*(?=<li class="list-group-item"|$)', section, re.S
    )
    return {int(lot_id): text_of(body) for lot_id, body in items}


def test_the_persons_page_shows_their_lots_and_what_drew_each(client, admin_user, session, settings):
    someone = UserFactory(balance="10.00")  # an admin's credit, "test factory": given money, spent first
    order = PaymentFactory(user=someone, amount=Decimal("50.00"))
    settle_by_notify(session, order, settings)
    charge(session, someone, amount="12.00", request_id="lots-admin")
    other = UserFactory()
    adjust_balance(session, user_id=other.id, amount=Decimal("7.00"), memo="not theirs", ctx=SYSTEM)
    gift, paid = session.scalars(select(CreditLot).where(CreditLot.user_id == someone.id).order_by(CreditLot.id)).all()
    usage_id = session.scalar(select(UsageLog.id).where(UsageLog.user_id == someone.id))

    page = client.get(f"/admin/users/{someone.id}").get_data(as_text=True)
    items = lot_items(page)
    assert list(items) == [paid.id, gift.id]  # newest first
    assert items[paid.id].startswith(f"充值 #{paid.id} 充值 {order.id} ¥48.00 / ¥50.00")
    assert "到期时间: 永不过期 1 笔支取" in items[paid.id] and f"扣费 {str(usage_id)[:8]}" in items[paid.id]
    assert items[paid.id].endswith("-¥2.00")
    assert items[gift.id].startswith(f"赠送 #{gift.id} 管理员发放 · test factory ¥0.00 / ¥10.00")
    assert items[gift.id].endswith("-¥10.00")
    assert f'href="/admin/orders/{order.id}"' in lots_section(page)  # the back office's order page
    assert kinds_line(page) == "其中充值 ¥48.00"  # the person's, under their balance
    assert 'title="余额"' in page  # the header's badge is the admin's own money: no breakdown of the person's
    assert "not theirs" not in page and "¥7.00" not in page

    client.set_cookie("lang", "en")
    items = lot_items(client.get(f"/admin/users/{someone.id}").get_data(as_text=True))
    assert items[gift.id].startswith(f"Given money #{gift.id} Admin credit · test factory ¥0.00 / ¥10.00")
    assert "Expires: Never 1 draw Charge" in items[gift.id]


def test_a_lot_shows_its_newest_draws_and_an_expiry(client, admin_user, session):
    someone = UserFactory()
    ctx = replace(SYSTEM, clock=lambda: at("2026-12-01 10:00"))
    adjust_balance(
        session,
        user_id=someone.id,
        amount=Decimal("20.00"),
        memo="promo",
        ctx=ctx,
        expires_at=at("2027-01-31 23:59:59"),
    )
    for n in range(11):
        charge(session, someone, amount=f"1.{n:02d}", request_id=f"many-{n}")
    lot = session.scalars(select(CreditLot).where(CreditLot.user_id == someone.id)).one()
    item = lot_items(client.get(f"/admin/users/{someone.id}").get_data(as_text=True))[lot.id]
    assert "到期时间: 2027-01-31 23:59 最近 10 笔支取" in item
    amounts = re.findall(r"-¥(1\.\d\d)", item)
    assert amounts == [f"1.{n:02d}" for n in range(10, 0, -1)]  # the newest ten, newest first
