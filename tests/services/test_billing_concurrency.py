"""Charging under contention: real threads, one connection each, committed rows (SPEC 4, 5)."""

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from ledger.models import AuditLog, BillingAccount, LedgerEntry, UsageLog
from ledger.services.accounts import register_user
from ledger.services.audit import INTERNAL, SYSTEM
from ledger.services.billing import adjust_balance, charge_usage
from ledger.services.errors import InsufficientBalance
from ledger.services.integrity import find_breaches
from ledger.services.xorpay import sign

pytestmark = pytest.mark.committed
THREADS = 50


def funded_user(database, balance: str):
    with database.session() as session:
        user = register_user(session, email=f"c{threading.get_ident()}@example.com", password="p" * 10, origin=SYSTEM)
        adjust_balance(session, user_id=user.id, amount=Decimal(balance), memo="test", origin=SYSTEM)
    return user


def run_together(n: int, work):
    """Run `work(i)` in n threads released at the same instant; return their results or exceptions."""
    barrier = threading.Barrier(n)

    def task(i):
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:  # collected and asserted on by the caller
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(task, range(n)))


def test_fifty_parallel_charges_leave_the_exact_balance(committed):
    user = funded_user(committed, "10.00")

    def charge(i):
        with committed.session() as session:
            return charge_usage(session, user_id=user.id, amount="0.30", model="m", request_id=f"r{i}", origin=INTERNAL)

    results = run_together(THREADS, charge)

    refused = [r for r in results if isinstance(r, InsufficientBalance)]
    charged = [r for r in results if not isinstance(r, Exception)]
    assert (len(charged), len(refused)) == (33, 17), [r for r in results if isinstance(r, Exception)][:3]
    assert all(r.balance >= 0 for r in refused)
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("0.1000")
        assert session.scalar(select(func.count()).select_from(UsageLog)) == 33
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 34
        assert session.scalar(select(func.min(LedgerEntry.balance_after))) == Decimal("0.1000")
        refusals = select(func.count()).where(AuditLog.action == "usage.insufficient_balance")
        assert session.scalar(refusals) == 17
        assert list(find_breaches(session)) == []


def test_parallel_repeats_of_one_request_id_charge_once(committed):
    user = funded_user(committed, "10.00")

    def charge(_i):
        with committed.session() as session:
            return charge_usage(session, user_id=user.id, amount="2.00", model="m", request_id="same", origin=INTERNAL)

    results = run_together(20, charge)

    assert not [r for r in results if isinstance(r, Exception)]
    assert sorted(r.replayed for r in results) == [False] + [True] * 19
    assert len({r.usage.id for r in results}) == 1
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("8.0000")
        assert session.scalar(select(func.count()).select_from(UsageLog)) == 1


def test_fifty_parallel_api_deducts_leave_the_exact_balance(committed, app, internal_headers):
    user = funded_user(committed, "5.00")

    def deduct(i):
        response = app.test_client().post(
            "/api/billing/deduct",
            headers=internal_headers,
            json={"user_id": str(user.id), "amount": "0.25", "model": "m", "request_id": f"api-{i}"},
        )
        return response.status_code

    statuses = run_together(THREADS, deduct)

    assert (statuses.count(200), statuses.count(402)) == (20, 30)
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("0.0000")
        assert list(find_breaches(session)) == []


def pending_order(database, user, amount="50.00"):
    from datetime import UTC, datetime, timedelta

    from ledger.models import PaymentTransaction

    with database.session() as session, session.begin():
        order = PaymentTransaction(
            id=uuid.uuid4(),
            user_id=user.id,
            amount=Decimal(amount),
            status="pending",
            provider_order_id=uuid.uuid4().hex,
            meta={},
            expires_at=datetime.now(UTC) + timedelta(minutes=30),
        )
        session.add(order)
    return order


def signed_notify(order, secret):
    fields = {
        "aoid": order.provider_order_id,
        "order_id": str(order.id),
        "pay_price": f"{order.amount:.2f}",
        "pay_time": "2026-11-25 20:00:00",
        "detail": "{}",
    }
    fields["sign"] = sign(fields["aoid"], fields["order_id"], fields["pay_price"], fields["pay_time"], secret)
    return fields


def test_thirty_identical_notifies_credit_once(committed, app, settings):
    user = funded_user(committed, "1.00")
    order = pending_order(committed, user)
    fields = signed_notify(order, settings.XORPAY_APP_SECRET)

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
    from ledger.services.payments import reconcile
    from ledger.services.xorpay import XorPayClient

    user = funded_user(committed, "0.50")
    order = pending_order(committed, user, amount="20.00")
    httpserver.expect_request(f"/api/query2/{settings.XORPAY_AID}").respond_with_json({"status": "payed"})
    gateway = XorPayClient(httpserver.url_for("/"), settings.XORPAY_AID, settings.XORPAY_APP_SECRET, timeout=(2, 2))
    fields = signed_notify(order, settings.XORPAY_APP_SECRET)

    def race(i):
        if i % 2:
            return app.test_client().post("/api/payments/webhook", data=fields).status_code
        with committed.session() as session:
            return reconcile(session, gateway).credited

    results = run_together(12, race)

    assert results[1::2] == [200] * 6
    assert sum(results[0::2]) <= 1  # a reconcile run credits only if it got there before every notify
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("20.5000")
        assert session.scalar(select(func.count()).where(LedgerEntry.kind == "topup")) == 1
        assert list(find_breaches(session)) == []


def invited_pair(database):
    from ledger.models import InviteRelation

    with database.session() as session:
        inviter = register_user(session, email="inviter@example.com", password="p" * 10, origin=SYSTEM)
        invitee = register_user(
            session, email="invitee@example.com", password="p" * 10, origin=SYSTEM, invite_code=inviter.invite_code
        )
        relation_id = session.scalar(select(InviteRelation.id))
    return inviter, invitee, relation_id


def test_sixteen_parallel_reward_calls_pay_once(committed, app, internal_headers):
    inviter, invitee, _ = invited_pair(committed)

    def reward(_i):
        response = app.test_client().post(
            "/api/invites/reward", headers=internal_headers, json={"invitee_id": str(invitee.id)}
        )
        return response.status_code, response.get_json()["rewarded"]

    results = run_together(16, reward)

    assert sorted(results) == [(200, False)] * 15 + [(200, True)]
    with committed.session() as session:
        assert session.get(BillingAccount, inviter.id).balance == Decimal("5.0000")
        assert session.get(BillingAccount, invitee.id).balance == Decimal("2.0000")
        assert session.scalar(select(func.count()).where(LedgerEntry.kind == "invite_reward")) == 2
        assert list(find_breaches(session)) == []


def test_reward_racing_the_first_top_up_pays_once(committed, app, settings, internal_headers):
    inviter, invitee, _ = invited_pair(committed)
    order = pending_order(committed, invitee, amount="30.00")
    fields = signed_notify(order, settings.XORPAY_APP_SECRET)

    def race(i):
        client = app.test_client()
        if i % 2:
            return client.post("/api/payments/webhook", data=fields).status_code
        return client.post(
            "/api/invites/reward", headers=internal_headers, json={"invitee_id": str(invitee.id)}
        ).status_code

    assert run_together(10, race) == [200] * 10
    with committed.session() as session:
        assert session.get(BillingAccount, invitee.id).balance == Decimal("32.0000")
        assert session.get(BillingAccount, inviter.id).balance == Decimal("5.0000")
        assert session.scalar(select(func.count()).where(LedgerEntry.kind == "invite_reward")) == 2
        assert session.scalar(select(func.count()).where(LedgerEntry.kind == "topup")) == 1
        assert list(find_breaches(session)) == []


class WatchingGateway:
    """A gateway that, while it 'waits on the network', records transactions left open in the database."""

    def __init__(self, engine, status="new"):
        from ledger.services.xorpay import CreatedOrder

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


def test_no_transaction_is_open_while_xorpay_is_asked(committed, app, engine, monkeypatch):
    from ledger.services.payments import reconcile

    with committed.session() as session:
        register_user(session, email="watched@example.com", password="p" * 10, origin=SYSTEM)
    watcher = WatchingGateway(engine)
    monkeypatch.setitem(app.extensions, "ledger.xorpay", watcher)
    client = app.test_client()
    token = re.search(r'csrf-token" content="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"email": "watched@example.com", "password": "p" * 10, "csrf_token": token})
    token = re.search(r'csrf-token" content="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)

    created = client.post("/api/payments/create", json={"amount": "10.00"}, headers={"X-CSRFToken": token})
    assert created.status_code == 201
    assert client.post("/recharge", data={"amount": "10", "csrf_token": token}).status_code == 302
    order_id = created.get_json()["transaction_id"]
    assert client.post(f"/recharge/{order_id}/check", data={"csrf_token": token}).status_code == 302
    with committed.session() as session:
        reconcile(session, watcher)

    assert len(watcher.seen) == 5  # two creates, one check, two orders reconciled
    assert all(rows == [] for rows in watcher.seen)
