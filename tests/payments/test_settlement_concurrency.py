"""Payments under contention and the gateway outside transactions: real threads, committed rows."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from ledger.models import AuditLog, BillingAccount, LedgerEntry, PaymentTransaction
from ledger.services.books.invariants import find_breaches
from ledger.services.context import SYSTEM
from ledger.services.people.sign_in import register_user
from tests.helpers import AuthActions, funded_user, pending_order, run_together, signed_notify

pytestmark = pytest.mark.committed


def test_thirty_identical_notifies_credit_once(committed, app, settings):
    user = funded_user(committed, "1.00")
    order = pending_order(committed, user)
    fields = signed_notify(order, secret=settings.XORPAY_APP_SECRET)

    def notify(_i):
        response = app.test_client().post("/api/payments/webhook", data=fields)
        return response.status_code, response.get_data(as_text=True)

    answers = run_together(30, notify)

    assert answers == [(200, "ok")] * 30
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("51.0000")
        assert session.scalar(select(func.count()).where(LedgerEntry.kind == "topup")) == 1
        assert session.scalar(select(func.count()).where(AuditLog.action == "payment.notify_repeated")) == 29
        assert list(find_breaches(session)) == []


def test_notify_racing_reconcile_credits_once(committed, app, settings, httpserver):
    from ledger.services.payments.settlement import reconcile
    from ledger.services.payments.xorpay import XorPayClient

    user = funded_user(committed, "0.50")
    order = pending_order(committed, user, amount="20.00")
    httpserver.expect_request(f"/api/query2/{settings.XORPAY_AID}").respond_with_json({"status": "payed"})
    gateway = XorPayClient(httpserver.url_for("/"), settings.XORPAY_AID, settings.XORPAY_APP_SECRET, timeout=(2, 2))
    fields = signed_notify(order, secret=settings.XORPAY_APP_SECRET)

    def race(i):
        if i % 2:
            return app.test_client().post("/api/payments/webhook", data=fields).status_code
        with committed.session() as session:
            return reconcile(session, SYSTEM.using(settings), gateway).credited

    results = run_together(12, race)

    assert results[1::2] == [200] * 6
    assert sum(results[0::2]) <= 1  # a reconcile run credits only if it got there before every notify
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("20.5000")
        assert session.scalar(select(func.count()).where(LedgerEntry.kind == "topup")) == 1
        assert list(find_breaches(session)) == []


class WatchingGateway:
    """A gateway that, while it 'waits on the network', records transactions left open in the database."""

    def __init__(self, engine, status="new"):
        from ledger.services.payments.xorpay import CreatedOrder

        self.engine, self.status, self.seen = engine, status, []
        self.created = CreatedOrder

    def _look(self):
        with self.engine.connect() as conn:
            self.seen.append(
                conn.execute(
                    text(
                        "SELECT left(query, 80) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
                    )
                ).all()
            )

    def create(self, **_kwargs):
        self._look()
        return self.created(aoid=uuid.uuid4().hex, qr="https://qr.alipay.com/x", expires_in=1800)

    def query2(self, _order_id):
        self._look()
        return self.status


def test_no_transaction_is_open_while_xorpay_is_asked(committed, app, engine, monkeypatch, settings):
    from ledger.services.payments.settlement import reconcile

    with committed.session() as session:
        register_user(session, email="watched@example.com", password="p" * 10, ctx=SYSTEM)
    watcher = WatchingGateway(engine)
    monkeypatch.setitem(app.extensions, "ledger.xorpay", watcher)
    client = app.test_client()
    AuthActions(client).login("watched@example.com", password="p" * 10)
    token = AuthActions(client).csrf_token("/")

    created = client.post("/api/payments/create", json={"amount": "10.00"}, headers={"X-CSRFToken": token})
    assert created.status_code == 201
    assert client.post("/recharge", data={"amount": "10", "csrf_token": token}).status_code == 302
    order_id = created.get_json()["transaction_id"]
    assert client.post(f"/recharge/{order_id}/check", data={"csrf_token": token}).status_code == 302
    with committed.session() as session:
        reconcile(session, SYSTEM.using(settings), watcher)

    assert len(watcher.seen) == 5  # two creates, one check, two orders reconciled
    assert all(rows == [] for rows in watcher.seen)


def test_twenty_parallel_orders_open_exactly_topup_max_pending(committed, settings, httpserver):
    """The person's row is locked while the open orders are counted: parallel requests count in turn."""
    from ledger.errors import TooManyPendingOrders
    from ledger.services.payments.orders import create_topup
    from tests.helpers import FakeXorPay

    fake = FakeXorPay(httpserver)
    fake.create_ok_each_time()
    user = funded_user(committed, "1.00")

    def create(_i):
        with committed.session() as session:
            order = create_topup(session, fake.client, user=user, amount="10.00", ctx=SYSTEM.using(settings))
            return order.status.value

    results = run_together(20, create)

    assert results.count("pending") == settings.TOPUP_MAX_PENDING == 5
    assert all(isinstance(r, TooManyPendingOrders) for r in results if r != "pending")
    with committed.session() as session:
        assert session.scalar(select(func.count()).select_from(PaymentTransaction)) == 5
        assert len(fake.sent_forms()) == 5
        assert list(find_breaches(session)) == []
