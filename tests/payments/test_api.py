"""Top-ups through the API: POST /api/payments/create, GET /api/payments/<id> and the XorPay webhook."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from ledger.models import AuditLog, LedgerEntry, NotifyRefusal, PaymentTransaction
from ledger.services.books.invariants import find_breaches
from ledger.services.payments.xorpay import XorPayClient, sign
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import (
    XORPAY_AID,
    XORPAY_SECRET,
    AuthActions,
    balance_of,
    count_rows,
    signed_notify,
    stop_the_clock,
)


def topup_entries(session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "topup"))


def api_create(client, auth, amount):
    return client.post("/api/payments/create", json={"amount": amount}, headers={"X-CSRFToken": auth.csrf_token("/")})


# --- create ---------------------------------------------------------------------------------------


def test_create_opens_a_pending_order_with_the_qr(client, auth, session, xorpay):
    user = UserFactory()
    auth.login(user)
    xorpay.create_ok(aoid="aoid-77", qr="https://qr.alipay.com/bax77")
    response = api_create(client, auth, "50.00")

    assert response.status_code == 201
    body = response.get_json()
    assert (body["status"], body["amount"], body["qr"]) == ("pending", "50.00", "https://qr.alipay.com/bax77")
    assert body["qr_svg"].startswith("<svg") and "<script" not in body["qr_svg"]
    order = session.get(PaymentTransaction, uuid.UUID(body["transaction_id"]))
    assert (order.user_id, order.amount, order.provider_order_id, order.status) == (
        user.id,
        Decimal("50.00"),
        "aoid-77",
        "pending",
    )
    form = xorpay.sent_forms()[0]
    assert (form["price"], form["pay_type"], form["order_id"]) == ("50.00", "alipay", str(order.id))
    assert form["name"] == "Ledger 余额充值 ¥50.00"  # SITE_NAME: the payer sees it in Alipay
    assert form["notify_url"] == "http://ledger.test/api/payments/webhook"
    assert form["sign"] == sign(form["name"], "alipay", "50.00", str(order.id), form["notify_url"], XORPAY_SECRET)
    # who paid is our user id: the person's email stays with us (SPEC 19)
    assert form["order_uid"] == str(user.id) and user.email not in repr(xorpay.sent_forms())
    assert balance_of(session, user.id) == 0


@pytest.mark.parametrize("amount", [50, 50.5, "0.99", "1000.01", "10.001", "abc", "", None, "-5", "1e2"])
def test_create_refuses_bad_amounts_with_422(client, auth, session, xorpay, amount):
    auth.login(UserFactory())
    response = api_create(client, auth, amount)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_amount"
    assert session.scalar(select(func.count()).select_from(PaymentTransaction)) == 0
    assert xorpay.server.log == []


@pytest.mark.parametrize("amount", ["1.00", "1000.00", "88.8"])
def test_create_accepts_the_bounds(client, auth, session, xorpay, amount):
    auth.login(UserFactory())
    xorpay.create_ok(aoid=f"aoid-{amount}")
    assert api_create(client, auth, amount).status_code == 201


def test_create_with_wechat_pay_sends_native_and_keeps_it_on_the_order(client, auth, session, xorpay):
    auth.login(UserFactory())
    xorpay.create_ok(aoid="aoid-wx", qr="weixin://wxpay/bizpayurl?pr=abc")
    response = client.post(
        "/api/payments/create",
        json={"amount": "50.00", "pay_type": "native"},
        headers={"X-CSRFToken": auth.csrf_token("/")},
    )
    assert response.status_code == 201
    body = response.get_json()
    assert (body["pay_type"], body["qr"]) == ("native", "weixin://wxpay/bizpayurl?pr=abc")
    order = session.get(PaymentTransaction, uuid.UUID(body["transaction_id"]))
    assert order.pay_type == "native"
    form = xorpay.sent_forms()[0]
    assert form["pay_type"] == "native"
    assert form["sign"] == sign(form["name"], "native", "50.00", str(order.id), form["notify_url"], XORPAY_SECRET)
    shown = client.get(f"/api/payments/{order.id}").get_json()
    assert shown["pay_type"] == "native"


@pytest.mark.parametrize("pay_type", ["wechat", "ALIPAY", "jsapi", "", None, 1, ["native"]])
def test_create_refuses_an_unknown_pay_type_with_422_invalid_request(client, auth, session, xorpay, pay_type):
    auth.login(UserFactory())
    response = client.post(
        "/api/payments/create",
        json={"amount": "50.00", "pay_type": pay_type},
        headers={"X-CSRFToken": auth.csrf_token("/")},
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert (error["code"], error.get("field")) == ("invalid_request", "pay_type")
    assert session.scalar(select(func.count()).select_from(PaymentTransaction)) == 0
    assert xorpay.server.log == []


@pytest.mark.parametrize(
    ("pay_type", "amount", "status"),
    [
        ("alipay", "1000.00", 201),
        ("alipay", "1000.01", 422),
        ("native", "1000.01", 201),
        ("native", "20000.00", 201),
        ("native", "20000.01", 422),
    ],
)
def test_each_method_has_its_own_limit_a_payment(client, auth, session, xorpay, pay_type, amount, status):
    auth.login(UserFactory())
    xorpay.create_ok()
    response = client.post(
        "/api/payments/create",
        json={"amount": amount, "pay_type": pay_type},
        headers={"X-CSRFToken": auth.csrf_token("/")},
    )
    assert response.status_code == status
    if status == 422:
        assert response.get_json()["error"]["code"] == "invalid_amount"
        assert session.scalar(select(func.count()).select_from(PaymentTransaction)) == 0


@pytest.mark.parametrize("status", ["sign_error", "order_exist", "no_alipay_contract", "alipay_api_error", "app_off"])
def test_create_refused_by_xorpay_is_502_and_the_order_failed(client, auth, session, xorpay, status):
    auth.login(UserFactory())
    xorpay.create_answers({"status": status, "info": "reason from alipay"})
    response = api_create(client, auth, "10.00")
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert (error["code"], error["gateway_status"]) == ("gateway_error", status)
    order = session.scalars(select(PaymentTransaction)).one()
    assert order.status == "failed" and order.meta["error"]["status"] == status
    assert topup_entries(session) == 0
    assert session.scalars(select(AuditLog.action).where(AuditLog.action == "payment.create_failed")).one()


def test_create_with_a_malformed_answer_is_502(client, auth, session, xorpay):
    auth.login(UserFactory())
    xorpay.server.expect_request(f"/api/pay/{XORPAY_AID}").respond_with_data("<html>502</html>", status=502)
    response = api_create(client, auth, "10.00")
    assert response.status_code == 502
    assert session.scalars(select(PaymentTransaction.status)).one() == "failed"


def test_create_needs_sign_in_and_csrf(client, auth, session, xorpay):
    assert client.post("/api/payments/create", json={"amount": "10.00"}).status_code == 401
    auth.login(UserFactory())
    response = client.post("/api/payments/create", json={"amount": "10.00"})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "csrf_failed"


def test_create_sends_two_decimals_and_stores_the_exact_amount(client, auth, session, xorpay):
    auth.login(UserFactory())
    xorpay.create_ok(expires_in=600)
    body = api_create(client, auth, "88.8").get_json()
    form = xorpay.sent_forms()[0]
    assert (form["price"], form["expire"]) == ("88.80", "1800")
    order = session.get(PaymentTransaction, uuid.UUID(body["transaction_id"]))
    assert order.amount == Decimal("88.80")

    assert timedelta(seconds=590) < order.expires_at - datetime.now(UTC) <= timedelta(seconds=600)


def test_create_when_xorpay_times_out_is_502_and_the_order_failed(app, client, auth, session, monkeypatch):
    import socket

    auth.login(UserFactory())
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        slow = XorPayClient(f"http://127.0.0.1:{silent.getsockname()[1]}", XORPAY_AID, XORPAY_SECRET, timeout=(1, 0.5))
        monkeypatch.setitem(app.extensions, "ledger.xorpay", slow)
        response = api_create(client, auth, "10.00")
    assert response.status_code == 502
    assert response.get_json()["error"]["gateway_status"] == "timeout"
    order = session.scalars(select(PaymentTransaction)).one()
    assert (order.status, order.meta["error"]["status"]) == ("failed", "timeout")
    assert topup_entries(session) == 0


# --- status ---------------------------------------------------------------------------------------


def test_show_answers_own_order_and_404_for_others(client, auth, session):
    owner = UserFactory()
    mine = PaymentFactory(user=owner)
    theirs = PaymentFactory()
    auth.login(owner)
    body = client.get(f"/api/payments/{mine.id}").get_json()
    assert body["transaction_id"] == str(mine.id) and body["status"] == "pending" and body["amount"] == "50.00"
    assert body["provider_order_id"] == mine.provider_order_id and body["paid_at"] is None
    for other in (theirs.id, uuid.uuid4(), "not-a-uuid"):
        response = client.get(f"/api/payments/{other}")
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_unknown_methods_on_payment_routes_are_405_in_the_error_format(client, auth, session):
    auth.login(UserFactory())
    for path in ["/api/payments/create", "/api/payments/webhook"]:
        response = client.get(path)
        assert response.status_code == 405
        assert response.get_json()["error"]["code"] == "method_not_allowed"


# --- webhook --------------------------------------------------------------------------------------


def post_notify(client, fields):
    return client.post("/api/payments/webhook", data=fields)


def test_valid_notify_credits_the_stored_amount_once(client, session):
    order = PaymentFactory(amount=Decimal("88.80"))
    response = post_notify(client, signed_notify(order))
    assert (response.status_code, response.get_data(as_text=True)) == (200, "ok")

    session.refresh(order)
    assert order.status == "succeeded" and order.paid_at is not None
    assert order.meta["pay_time"] == "2026-11-25 20:00:00" and order.meta["detail"]["bank_type"] == "ALIPAY"
    assert balance_of(session, order.user_id) == Decimal("88.80")
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.payment_transaction_id == order.id)).one()
    assert (entry.kind, entry.amount, entry.balance_after) == ("topup", Decimal("88.80"), Decimal("88.80"))
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "payment.succeeded")).one()
    assert audit.actor == "xorpay" and audit.details["transaction_id"] == str(order.id)
    assert list(find_breaches(session)) == []


def test_repeated_notify_answers_ok_and_changes_nothing(client, session):
    order = PaymentFactory()
    fields = signed_notify(order)
    assert post_notify(client, fields).status_code == 200
    for _ in range(3):
        response = post_notify(client, fields)
        assert (response.status_code, response.get_data(as_text=True)) == (200, "ok")
    assert balance_of(session, order.user_id) == Decimal("50.00")
    assert topup_entries(session) == 1


@pytest.mark.parametrize(
    ("tamper", "status", "body", "reason"),
    [
        ({"sign": "0" * 32}, 400, "sign error", "bad_sign"),
        ({"pay_price": "0.01"}, 400, "sign error", "bad_sign"),  # changed after signing
        ({"_secret": "not-the-secret"}, 400, "sign error", "bad_sign"),
        ({"_pay_price": "49.99"}, 400, "amount mismatch", "amount_mismatch"),  # signed, but not our amount
        ({"_pay_price": "abc"}, 400, "amount mismatch", "amount_mismatch"),
        # SPEC 19: a signed pay_price must be the exact amount, not a number that equals it.
        ({"_pay_price": "5e1"}, 400, "amount mismatch", "amount_mismatch"),
        ({"_pay_price": "５０.00"}, 400, "amount mismatch", "amount_mismatch"),
        ({"_pay_price": "+50.00"}, 400, "amount mismatch", "amount_mismatch"),
        ({"_pay_price": " 50.00"}, 400, "amount mismatch", "amount_mismatch"),
        ({"_pay_price": "50.00\n"}, 400, "amount mismatch", "amount_mismatch"),
        ({"_aoid": "someone-elses-aoid"}, 400, "aoid mismatch", "aoid_mismatch"),
        ({"_order_id": str(uuid.uuid4())}, 404, "unknown order", "unknown_order"),
        ({"_order_id": "not-a-uuid"}, 404, "unknown order", "unknown_order"),
        ({"aoid": ""}, 400, "missing aoid", "missing_fields"),
        ({"sign": ""}, 400, "missing sign", "missing_fields"),
    ],
)
def test_refused_notify_is_audited_and_credits_nothing(client, session, tamper, status, body, reason):
    order = PaymentFactory()
    fields = signed_notify(
        order, pay_price=tamper.get("_pay_price"), aoid=tamper.get("_aoid"), secret=tamper.get("_secret", XORPAY_SECRET)
    )
    if "_order_id" in tamper:
        fields["order_id"] = tamper["_order_id"]
        fields["sign"] = sign(
            fields["aoid"], fields["order_id"], fields["pay_price"], fields["pay_time"], XORPAY_SECRET
        )
    fields.update({k: v for k, v in tamper.items() if not k.startswith("_")})

    response = post_notify(client, fields)

    assert (response.status_code, response.get_data(as_text=True)) == (status, body)
    session.refresh(order)
    assert order.status == "pending" and topup_entries(session) == 0
    counted = session.scalars(select(NotifyRefusal)).one()  # every refusal: counted by source and minute
    assert (counted.source, counted.reason, counted.count) == ("127.0.0.1", reason, 1)
    assert "sign" not in counted.sample
    audits = session.scalars(select(AuditLog).where(AuditLog.action == "payment.notify_refused")).all()
    if reason in ("bad_sign", "missing_fields"):  # anyone can post these: no row of their own
        assert audits == []
    else:  # XorPay signed it, and still it is refused: worth a row of its own
        [audit] = audits
        assert audit.details["reason"] == reason and audit.actor == "xorpay" and "sign" not in audit.details


@pytest.mark.parametrize("pay_price", ["50", "50.0", "50.00"])
def test_notify_with_the_amount_in_any_exact_form_credits(client, session, pay_price):
    order = PaymentFactory()
    assert post_notify(client, signed_notify(order, pay_price=pay_price)).status_code == 200
    assert balance_of(session, order.user_id) == Decimal("50.00")


def test_notify_records_the_aoid_when_none_was_recorded(client, session):
    order = PaymentFactory(provider_order_id=None)
    assert post_notify(client, signed_notify(order, aoid="aoid-from-notify")).status_code == 200
    session.refresh(order)
    assert (order.status, order.provider_order_id) == ("succeeded", "aoid-from-notify")


def test_notify_for_a_late_payment_still_credits_an_expired_order(client, session):
    order = PaymentFactory(status="expired")
    assert post_notify(client, signed_notify(order)).status_code == 200
    session.refresh(order)
    assert order.status == "succeeded" and balance_of(session, order.user_id) == Decimal("50.00")


@pytest.mark.parametrize("field", ["aoid", "order_id", "pay_time"])
def test_forged_notify_with_nul_bytes_is_refused_and_audited(client, session, field):
    order = PaymentFactory()
    fields = {**signed_notify(order), field: "x\x00y"}
    response = post_notify(client, fields)
    assert response.status_code in (400, 404)
    counted = session.scalars(select(NotifyRefusal)).one()
    assert "\x00" not in str(counted.sample)
    assert topup_entries(session) == 0


@pytest.mark.parametrize("detail", ['{"a": "\\u0000"}', "NaN", '{"a": 1e999}', "[" * 5000, "not json", "\x00"])
def test_signed_notify_with_strange_detail_still_credits(client, session, detail):
    order = PaymentFactory()
    response = post_notify(client, {**signed_notify(order), "detail": detail, "more": "m\x00"})
    assert (response.status_code, response.get_data(as_text=True)) == (200, "ok")
    session.refresh(order)
    assert order.status == "succeeded" and isinstance(order.meta["detail"], str)
    assert balance_of(session, order.user_id) == Decimal("50.00")


# --- limits against abuse (SPEC 19) ---------------------------------------------------------------


@pytest.fixture
def limited(app, settings, monkeypatch):
    """The app with tight top-up limits (read per request) and empty counters."""
    from ledger.extensions import limiter

    tight = replace(settings, RATELIMIT_TOPUP="3/minute", RATELIMIT_TOPUP_CHECK="2/minute", TOPUP_MAX_PENDING=100)
    monkeypatch.setitem(app.config, "LEDGER", tight)
    limiter.reset()
    yield app
    limiter.reset()


def test_a_person_may_have_at_most_topup_max_pending_unpaid_orders(client, auth, session, xorpay):
    user = UserFactory()
    auth.login(user)
    xorpay.create_ok_each_time()
    assert [api_create(client, auth, "1000.00").status_code for _ in range(5)] == [201] * 5
    sixth = api_create(client, auth, "1000.00")
    assert sixth.status_code == 429
    assert sixth.get_json()["error"]["code"] == "too_many_pending_orders"
    assert "5" in sixth.get_json()["error"]["message"]
    assert count_rows(session, PaymentTransaction, user) == 5 and len(xorpay.sent_forms()) == 5  # no gateway call
    # an order that expired, or was paid, no longer counts
    session.execute(
        update(PaymentTransaction)
        .where(PaymentTransaction.id == session.scalars(select(PaymentTransaction.id).limit(1)).one())
        .values(expires_at=func.now() - timedelta(minutes=1))
    )
    assert api_create(client, auth, "10.00").status_code == 201


def test_creating_orders_is_limited_per_person_page_and_api_together(limited, session, xorpay):
    xorpay.create_ok_each_time()
    client = limited.test_client()
    auth = AuthActions(client)
    auth.login(UserFactory())
    statuses = [api_create(client, auth, "10.00").status_code for _ in range(2)]
    page = client.post("/recharge", data={"amount": "10", "csrf_token": auth.csrf_token("/recharge")})
    statuses += [page.status_code, api_create(client, auth, "10.00").status_code]
    assert statuses == [201, 201, 302, 429]
    other = limited.test_client()  # another person is not limited by the first one's orders
    AuthActions(other).login(UserFactory())
    assert api_create(other, AuthActions(other), "10.00").status_code == 201


def test_check_now_is_limited_per_order(limited, session, xorpay):
    xorpay.create_ok_each_time()
    xorpay.query2_answers("not_exist")
    client = limited.test_client()
    auth = AuthActions(client)
    auth.login(UserFactory())
    first, second = (api_create(client, auth, "10.00").get_json()["transaction_id"] for _ in range(2))

    def check(order_id):
        token = auth.csrf_token(f"/recharge/{order_id}")
        return client.post(f"/recharge/{order_id}/check", data={"csrf_token": token}).status_code

    assert [check(first), check(first), check(first), check(second)] == [302, 302, 429, 302]
    # the same order written another way is the same order: still limited
    respelled = [first.upper(), first.replace("-", ""), "{" + first + "}", "urn:uuid:" + first]
    assert [check(other_spelling) for other_spelling in respelled] == [429] * 4


def test_forged_notifies_add_to_a_count_not_a_row_each_and_past_the_limit_answer_429(app, client, session, monkeypatch):
    """300 forged posts from one address: one row counting them, 429 past RATELIMIT_WEBHOOK_REFUSALS,
    and a real notify from that address still credits (only refusals are limited)."""
    monkeypatch.setitem(app.config, "LEDGER", replace(app.config["LEDGER"], RATELIMIT_WEBHOOK_REFUSALS="60/minute"))
    # the context's clock, stopped: 300 posts could straddle two minutes, each window with its own 60
    stopped = stop_the_clock(app, monkeypatch, datetime(2026, 3, 1, 4, 5, 30, tzinfo=UTC))
    order = PaymentFactory()
    forged = signed_notify(order, secret="not-the-secret")
    audit_rows_before = session.scalar(select(func.count()).select_from(AuditLog))
    statuses = [post_notify(client, forged).status_code for _ in range(300)]
    assert statuses == [400] * 60 + [429] * 240
    [counted] = session.scalars(select(NotifyRefusal)).all()
    assert (counted.reason, counted.count, counted.minute, counted.last_at) == (
        "bad_sign",
        60,
        stopped.replace(second=0),
        stopped,
    )
    assert session.scalar(select(func.count()).select_from(AuditLog)) == audit_rows_before
    other = client.post("/api/payments/webhook", data=forged, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other.status_code == 400  # another address counts on its own
    real = post_notify(client, signed_notify(order))
    assert (real.status_code, real.get_data(as_text=True)) == (200, "ok")
    assert balance_of(session, order.user_id) == Decimal("50.00")


def test_refusals_from_one_ipv6_subscriber_count_together_and_a_limit_may_have_parts(app, client, session, monkeypatch):
    """An IPv6 address's /64 is one source (else a /64 could forge without end); "5/minute;3/hour"
    holds at 3; a source that is no address is cut to 64 characters, counted and stored alike."""
    from ledger.services.payments.webhook import source_of

    assert source_of("2001:db8::5") == source_of("2001:db8::ffff:1") == "2001:db8::/64"
    assert source_of("2001:db8:0:1::5") == "2001:db8:0:1::/64"
    assert source_of("::ffff:10.1.2.3") == "10.1.2.3" and source_of("10.1.2.3") == "10.1.2.3"
    assert source_of("1" * 70) == "1" * 64 and source_of(None) == "unknown"
    monkeypatch.setitem(
        app.config, "LEDGER", replace(app.config["LEDGER"], RATELIMIT_WEBHOOK_REFUSALS="5/minute;3/hour")
    )
    forged = signed_notify(PaymentFactory(), secret="not-the-secret")
    statuses = [
        client.post("/api/payments/webhook", data=forged, environ_base={"REMOTE_ADDR": f"2001:db8::{n}"}).status_code
        for n in range(1, 6)
    ]
    assert statuses == [400, 400, 400, 429, 429]
    assert session.scalars(select(NotifyRefusal.source)).all() == ["2001:db8::/64"]
