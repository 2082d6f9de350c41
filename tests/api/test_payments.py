"""Top-ups: POST /api/payments/create, GET /api/payments/<id>, the webhook, check-now and reconcile."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.models import AuditLog, BillingAccount, LedgerEntry, PaymentTransaction
from ledger.services.integrity import find_breaches
from ledger.services.payments import IllegalTransition, move, reconcile
from ledger.services.xorpay import XorPayClient, sign
from tests.conftest import XORPAY_AID, XORPAY_SECRET
from tests.factories import PaymentFactory, UserFactory


class FakeXorPay:
    """XorPay as a real HTTP peer (pytest-httpserver), with the answers a test sets."""

    def __init__(self, httpserver) -> None:
        self.server = httpserver
        self.client = XorPayClient(httpserver.url_for("/"), XORPAY_AID, XORPAY_SECRET, timeout=(1, 1))

    def create_answers(self, body: dict) -> None:
        self.server.expect_request(f"/api/pay/{XORPAY_AID}", method="POST").respond_with_json(body)

    def create_ok(self, aoid: str = "aoid-1", qr: str = "https://qr.alipay.com/bax01", expires_in="1800") -> None:
        self.create_answers({"status": "ok", "aoid": aoid, "expires_in": expires_in, "info": {"qr": qr}})

    def query2_answers(self, status: str) -> None:
        self.server.expect_request(f"/api/query2/{XORPAY_AID}").respond_with_json({"status": status})

    def sent_forms(self) -> list[dict]:
        return [request.form.to_dict() for request, _ in self.server.log]


@pytest.fixture
def xorpay(app, httpserver, monkeypatch) -> FakeXorPay:
    fake = FakeXorPay(httpserver)
    monkeypatch.setitem(app.extensions, "ledger.xorpay", fake.client)
    return fake


def notify_fields(order, *, pay_price=None, aoid="aoid-1", pay_time="2026-11-25 20:00:00", secret=XORPAY_SECRET):
    fields = {
        "aoid": aoid,
        "order_id": str(order.id),
        "pay_price": pay_price or f"{order.amount:.2f}",
        "pay_time": pay_time,
        "more": "",
        "detail": '{"transaction_id": "2026x", "bank_type": "ALIPAY"}',
    }
    fields["sign"] = sign(fields["aoid"], fields["order_id"], fields["pay_price"], fields["pay_time"], secret)
    return fields


def balance_of(session, user_id) -> Decimal:
    return session.scalar(select(BillingAccount.balance).where(BillingAccount.user_id == user_id))


def topup_entries(session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "topup"))


def api_create(client, auth, amount):
    return client.post("/api/payments/create", json={"amount": amount}, headers={"X-CSRFToken": auth.csrf_token("/")})


# --- create -------------------------------------------------------------------------------------


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
    assert form["notify_url"] == "http://ledger.test/api/payments/webhook"
    assert form["sign"] == sign(form["name"], "alipay", "50.00", str(order.id), form["notify_url"], XORPAY_SECRET)
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


# --- status -------------------------------------------------------------------------------------


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


# --- webhook ------------------------------------------------------------------------------------


def post_notify(client, fields):
    return client.post("/api/payments/webhook", data=fields)


def test_valid_notify_credits_the_stored_amount_once(client, session):
    order = PaymentFactory(amount=Decimal("88.80"))
    response = post_notify(client, notify_fields(order))
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
    fields = notify_fields(order)
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
        ({"_order_id": str(uuid.uuid4())}, 404, "unknown order", "unknown_order"),
        ({"_order_id": "not-a-uuid"}, 404, "unknown order", "unknown_order"),
        ({"aoid": ""}, 400, "missing aoid", "missing_fields"),
        ({"sign": ""}, 400, "missing sign", "missing_fields"),
    ],
)
def test_refused_notify_is_audited_and_credits_nothing(client, session, tamper, status, body, reason):
    order = PaymentFactory()
    fields = notify_fields(order, pay_price=tamper.get("_pay_price"), secret=tamper.get("_secret", XORPAY_SECRET))
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
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "payment.notify_refused")).one()
    assert audit.details["reason"] == reason and audit.actor == "xorpay"
    assert "sign" not in audit.details


def test_notify_for_a_late_payment_still_credits_an_expired_order(client, session):
    order = PaymentFactory(status="expired")
    assert post_notify(client, notify_fields(order)).status_code == 200
    session.refresh(order)
    assert order.status == "succeeded" and balance_of(session, order.user_id) == Decimal("50.00")


def test_status_machine_refuses_moves_out_of_succeeded():
    order = PaymentTransaction(status="succeeded")
    for status in ("pending", "failed", "expired", "succeeded"):
        with pytest.raises(IllegalTransition):
            move(order, status)
    with pytest.raises(IllegalTransition):
        move(PaymentTransaction(status="expired"), "pending")


# --- check now and reconcile ----------------------------------------------------------------------


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
    response = client.post(f"/recharge/{order.id}/check", data={"csrf_token": auth.csrf_token("/")})
    assert response.status_code == 302
    session.refresh(order)
    assert order.status == status
    assert balance_of(session, user.id) == (Decimal("50.00") if credited else 0)
    request, _ = xorpay.server.log[0]
    assert request.args["order_id"] == str(order.id) and request.args["sign"] == sign(str(order.id), XORPAY_SECRET)


def test_check_now_on_another_persons_order_is_404(client, auth, session, xorpay):
    order = PaymentFactory()
    auth.login(UserFactory())
    response = client.post(f"/recharge/{order.id}/check", data={"csrf_token": auth.csrf_token("/")})
    assert response.status_code == 404
    assert xorpay.server.log == []


def test_reconcile_credits_paid_and_expires_stale_orders(session, xorpay):
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

    report = reconcile(session, xorpay.client)

    assert (report.checked, report.credited, report.expired, report.errors) == (3, 1, 1, 0)
    statuses = {o.id: session.get(PaymentTransaction, o.id).status for o in (paid, stale, waiting, done)}
    assert statuses == {paid.id: "succeeded", stale.id: "expired", waiting.id: "pending", done.id: "succeeded"}
    assert balance_of(session, paid.user_id) == Decimal("50.00")


def test_reconcile_command_reports_and_exits_1_on_gateway_errors(app, session, xorpay):
    PaymentFactory()
    xorpay.server.expect_request(f"/api/query2/{XORPAY_AID}").respond_with_data("oops", status=500)
    result = app.test_cli_runner().invoke(args=["payments", "reconcile"])
    assert result.exit_code == 1
    assert "checked 1, credited 0, expired 0, errors 1" in result.output


def test_summary_lists_recent_top_ups(client, auth, session):
    user = UserFactory()
    order = PaymentFactory(user=user)
    auth.login(user)
    body = client.get("/api/billing/summary").get_json()
    assert [t["transaction_id"] for t in body["recent_transactions"]] == [str(order.id)]
    assert body["recent_transactions"][0]["status"] == "pending"


# --- review findings: gateway errors, hostile notifies, late payments ------------------------------


def test_query2_error_status_is_a_gateway_error_not_not_paid_yet(client, auth, session, xorpay):
    user = UserFactory()
    order = PaymentFactory(user=user)
    xorpay.query2_answers("sign_error")
    report = reconcile(session, xorpay.client)
    assert (report.checked, report.errors) == (1, 1)
    auth.login(user)
    page = client.post(
        f"/recharge/{order.id}/check", data={"csrf_token": auth.csrf_token("/")}, follow_redirects=True
    ).get_data(as_text=True)
    assert "签名" in page  # "the payment service rejected our signature"
    session.refresh(order)
    assert order.status == "pending"


@pytest.mark.parametrize("field", ["aoid", "order_id", "pay_time"])
def test_forged_notify_with_nul_bytes_is_refused_and_audited(client, session, field):
    order = PaymentFactory()
    fields = {**notify_fields(order), field: "x\x00y"}
    response = post_notify(client, fields)
    assert response.status_code in (400, 404)
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "payment.notify_refused")).one()
    assert "\x00" not in str(audit.details)
    assert topup_entries(session) == 0


@pytest.mark.parametrize("detail", ['{"a": "\\u0000"}', "NaN", '{"a": 1e999}', "[" * 5000, "not json", "\x00"])
def test_signed_notify_with_strange_detail_still_credits(client, session, detail):
    order = PaymentFactory()
    response = post_notify(client, {**notify_fields(order), "detail": detail, "more": "m\x00"})
    assert (response.status_code, response.get_data(as_text=True)) == (200, "ok")
    session.refresh(order)
    assert order.status == "succeeded" and isinstance(order.meta["detail"], str)
    assert balance_of(session, order.user_id) == Decimal("50.00")


@pytest.mark.parametrize("status", ["expired", "failed"])
def test_reconcile_finds_a_late_payment_on_an_expired_or_failed_order(session, xorpay, status):
    order = PaymentFactory(status=status)
    xorpay.query2_answers("success")
    report = reconcile(session, xorpay.client)
    assert (report.checked, report.credited) == (1, 1)
    session.refresh(order)
    assert order.status == "succeeded" and balance_of(session, order.user_id) == Decimal("50.00")


def test_reconcile_leaves_old_expired_and_unknown_failed_orders_alone(session, xorpay):
    from datetime import UTC, datetime, timedelta

    PaymentFactory(status="expired", created_at=datetime.now(UTC) - timedelta(days=3))
    PaymentFactory(status="failed", provider_order_id=None)
    assert reconcile(session, xorpay.client).checked == 0


def test_create_sends_two_decimals_and_stores_the_exact_amount(client, auth, session, xorpay):
    auth.login(UserFactory())
    xorpay.create_ok(expires_in=600)
    body = api_create(client, auth, "88.8").get_json()
    form = xorpay.sent_forms()[0]
    assert (form["price"], form["expire"]) == ("88.80", "1800")
    order = session.get(PaymentTransaction, uuid.UUID(body["transaction_id"]))
    assert order.amount == Decimal("88.80")
    from datetime import UTC, datetime, timedelta

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


def test_unknown_methods_on_payment_routes_are_405_in_the_error_format(client, auth, session):
    auth.login(UserFactory())
    for path in ["/api/payments/create", "/api/payments/webhook"]:
        response = client.get(path)
        assert response.status_code == 405
        assert response.get_json()["error"]["code"] == "method_not_allowed"
