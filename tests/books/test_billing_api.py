"""POST /api/billing/deduct and GET /api/billing/summary: every status of SPEC 6."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from ledger.models import AuditLog, BillingAccount, LedgerEntry, UsageLog
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import count_rows


def deduct(client, headers, user, **overrides):
    body = {
        "user_id": str(user.id),
        "amount": "1.50",
        "model": "image-studio-v2",
        "request_id": "req-1",
        "params": {"images": 1},
    }
    body.update(overrides)
    return client.post("/api/billing/deduct", json=body, headers=headers)


# --- deduct ---------------------------------------------------------------------------------------


def test_deduct_charges_and_answers_the_charge(client, session, internal_headers):
    user = UserFactory(balance="10.00")
    response = deduct(client, internal_headers, user)

    assert response.status_code == 200
    body = response.get_json()
    assert body["user_id"] == str(user.id)
    assert (body["amount"], body["balance"], body["request_id"], body["replayed"]) == ("1.50", "8.50", "req-1", False)
    usage = session.get(UsageLog, uuid.UUID(body["usage_id"]))
    assert usage.amount == Decimal("1.50") and usage.params == {"images": 1}
    assert datetime.fromisoformat(body["created_at"]).utcoffset() == timedelta(hours=8)  # Asia/Shanghai


def test_deduct_replay_answers_the_first_charge(client, session, internal_headers):
    user = UserFactory(balance="10.00")
    first = deduct(client, internal_headers, user).get_json()
    deduct(client, internal_headers, user, request_id="req-2", amount="5.00")  # the balance moves on
    again = deduct(client, internal_headers, user)
    assert again.status_code == 200
    assert again.get_json() == {**first, "replayed": True}  # balance "8.50": what the charge left
    assert count_rows(session, UsageLog) == 2


def test_deduct_conflicting_replay_is_409(client, session, internal_headers):
    user = UserFactory(balance="10.00")
    deduct(client, internal_headers, user)
    response = deduct(client, internal_headers, user, amount="2.00")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "request_id_conflict"
    assert session.scalar(select(BillingAccount.balance).where(BillingAccount.user_id == user.id)) == Decimal("8.50")


def test_deduct_insufficient_balance_is_402_with_balance(client, session, internal_headers):
    user = UserFactory(balance="1.00")
    response = deduct(client, internal_headers, user, amount="1.01")
    assert response.status_code == 402
    assert response.get_json() == {
        "error": {
            "code": "insufficient_balance",
            "balance": "1.00",
            "available": "1.00",
            "message": "可用余额（¥1.00）不足以支付这笔扣费。",  # Chinese unless the caller asks otherwise
        }
    }
    english = deduct(client, {**internal_headers, "Accept-Language": "en"}, user, amount="1.01")
    assert english.get_json()["error"]["message"] == "The available balance (¥1.00) is too low for this charge."
    assert count_rows(session, UsageLog) == 0


def test_deduct_unknown_user_is_404(client, session, internal_headers):
    UserFactory(balance="1.00")
    response = deduct(client, internal_headers, type("U", (), {"id": uuid.uuid4()})())
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "user_not_found"


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-internal-token": "wrong"}, {"x-internal-token": ""}, {"Authorization": "Bearer test-internal-key"}],
)
def test_deduct_without_the_internal_token_is_401(client, session, headers):
    user = UserFactory(balance="10.00")
    response = deduct(client, headers, user)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert count_rows(session, UsageLog) == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount": 1.5},
        {"amount": 2},
        {"amount": "0"},
        {"amount": "-1"},
        {"amount": "0.00001"},
        {"amount": "1000000.01"},
        {"amount": "1e2"},
        {"amount": "NaN"},
        {"amount": None},
        {"amount": ""},
        # SPEC 19: money strings are exact; no spaces, signs, exponents or other digit forms.
        {"amount": " 1.00"},
        {"amount": "1.00 "},
        {"amount": "+1.00"},
        {"amount": "１.00"},
        {"amount": "1."},
        {"amount": ".5"},
        {"user_id": "not-a-uuid"},
        {"user_id": 42},
        {"user_id": None},
        {"model": ""},
        {"model": "x" * 101},
        {"model": 5},
        {"request_id": ""},
        {"request_id": "r" * 129},
        {"request_id": 7},
        {"params": [1]},
        {"params": "x"},
        {"params": {"a": float("nan")}},
        {"params": {"a": float("inf")}},
        {"params": {"a": "\u0000"}},
        {"params": {"k\u0000": 1}},
        {"params": {"a": "x" * 17000}},
        {"model": "\ud800"},
        {"request_id": "\udc00"},
        {"request_id": "a\u0000b"},
    ],
)
def test_deduct_bad_input_is_422_and_writes_nothing(client, session, internal_headers, overrides):
    user = UserFactory(balance="10.00")
    audits = count_rows(session, AuditLog)
    response = deduct(client, internal_headers, user, **overrides)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request" and error["message"]
    assert (count_rows(session, UsageLog), count_rows(session, AuditLog)) == (0, audits)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("not json", "application/json"),
        ("[1, 2]", "application/json"),
        ("user_id=1", "application/x-www-form-urlencoded"),
        ("", None),
    ],
)
def test_deduct_non_json_body_is_422(client, session, internal_headers, data, content_type):
    response = client.post("/api/billing/deduct", data=data, content_type=content_type, headers=internal_headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_deduct_absurdly_nested_params_are_422(client, session, internal_headers):
    user = UserFactory(balance="10.00")
    nested = "[" * 5000 + "]" * 5000
    body = f'{{"user_id": "{user.id}", "amount": "1.00", "model": "m", "request_id": "r", "params": {nested}}}'
    response = client.post("/api/billing/deduct", data=body, content_type="application/json", headers=internal_headers)
    assert response.status_code == 422
    assert count_rows(session, UsageLog) == 0


def test_deduct_oversized_body_is_413(client, session, internal_headers):
    response = client.post(
        "/api/billing/deduct", data="x" * (5 * 1024 * 1024), content_type="application/json", headers=internal_headers
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


def test_deduct_with_unusable_client_address_still_answers(client, session, internal_headers):
    user = UserFactory(balance="10.00")
    response = client.post(
        "/api/billing/deduct",
        headers=internal_headers,
        environ_base={"REMOTE_ADDR": "not-an-ip"},
        json={"user_id": str(user.id), "amount": "1.00", "model": "m", "request_id": "r"},
    )
    assert response.status_code == 200
    assert session.scalars(select(AuditLog.ip).where(AuditLog.action == "usage.charged")).one() is None


def test_deduct_missing_fields_are_422(client, session, internal_headers):
    user = UserFactory(balance="10.00")
    response = client.post("/api/billing/deduct", json={"user_id": str(user.id)}, headers=internal_headers)
    assert response.status_code == 422


def test_ledger_entries_match_after_api_charges(client, session, internal_headers):
    user = UserFactory(balance="3.00")
    for i in range(3):
        deduct(client, internal_headers, user, amount="1.00", request_id=f"r{i}")
    assert deduct(client, internal_headers, user, amount="0.01", request_id="r-over").status_code == 402
    amounts = session.scalars(
        select(LedgerEntry.balance_after).where(LedgerEntry.user_id == user.id).order_by(LedgerEntry.id)
    ).all()
    assert amounts == [Decimal("3.00"), Decimal("2.00"), Decimal("1.00"), Decimal("0.00")]


# --- summary --------------------------------------------------------------------------------------


def test_summary_needs_a_session(client, session):
    response = client.get("/api/billing/summary")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_summary_counts_today_and_30_days_in_the_users_time_zone(client, auth, session, internal_headers):
    user = UserFactory(balance="100.00")
    for i, amount in enumerate(["1.00", "2.50", "0.0125"]):
        deduct(client, internal_headers, user, amount=amount, request_id=f"r{i}")
    # Move one charge to 10 days ago and one to 40 days ago: counted in 30 days, and not at all.
    now = datetime.now(UTC)
    session.execute(update(UsageLog).where(UsageLog.request_id == "r0").values(created_at=now - timedelta(days=10)))
    session.execute(update(UsageLog).where(UsageLog.request_id == "r1").values(created_at=now - timedelta(days=40)))
    other = UserFactory(balance="5.00")
    deduct(client, internal_headers, other, amount="3.00", request_id="other")

    auth.login(user)
    body = client.get("/api/billing/summary").get_json()

    assert body["user_id"] == str(user.id) and body["email"] == user.email
    assert (body["balance"], body["currency"]) == ("96.4875", "CNY")
    assert body["usage"] == {"today": "0.0125", "last_30_days": "1.0125", "count_30_days": 2}
    assert [u["request_id"] for u in body["recent_usage"]] == ["r2", "r0", "r1"]
    assert body["recent_transactions"] == []
    assert body["invites"] == {
        "code": user.invite_code,
        "link": f"http://ledger.test/register?invite={user.invite_code}",
        "invited_count": 0,
        "rewards_total": "0.00",
    }


def test_summary_lists_recent_top_ups(client, auth, session):
    user = UserFactory()
    order = PaymentFactory(user=user)
    auth.login(user)
    body = client.get("/api/billing/summary").get_json()
    assert [t["transaction_id"] for t in body["recent_transactions"]] == [str(order.id)]
    assert body["recent_transactions"][0]["status"] == "pending"


def test_a_deduct_and_a_batch_item_say_what_they_drew_of_each_kind_of_money(
    client, session, internal_headers, settings
):
    from tests.helpers import settle_by_notify

    user = UserFactory(balance="1.00")  # given money, spent first
    settle_by_notify(session, PaymentFactory(user=user, amount=Decimal("10.00")), settings)
    body = deduct(client, internal_headers, user, amount="1.50").get_json()
    assert body["drawn"] == {"paid": "0.50", "granted": "1.00", "plan": "0.00"}
    assert deduct(client, internal_headers, user, amount="1.50").get_json()["drawn"] == body["drawn"]  # a replay
    items = [
        {"user_id": str(user.id), "amount": amount, "model": "image-studio-v2", "request_id": request_id}
        for amount, request_id in (("1.50", "req-1"), ("0.25", "b-1"))
    ]
    results = client.post("/api/billing/deduct/batch", json={"charges": items}, headers=internal_headers).get_json()
    assert [(a["status"], a["drawn"]) for a in results["results"]] == [
        ("replayed", {"paid": "0.50", "granted": "1.00", "plan": "0.00"}),  # what the first charge drew
        ("charged", {"paid": "0.25", "granted": "0.00", "plan": "0.00"}),
    ]


def test_the_summary_splits_the_balance_by_kind_and_lists_what_expires_next(client, auth, session):
    from ledger.services.books.accounts import adjust_balance
    from ledger.services.context import SYSTEM

    user = UserFactory(balance="2.00")
    soon, later = (datetime.now(UTC) + timedelta(days=d) for d in (3, 30))
    adjust_balance(session, user_id=user.id, amount=Decimal("5.00"), memo="g", ctx=SYSTEM, expires_at=later)
    adjust_balance(session, user_id=user.id, amount=Decimal("1.25"), memo="g", ctx=SYSTEM, expires_at=soon)
    auth.login(user)
    body = client.get("/api/billing/summary").get_json()
    assert (body["balance"], body["paid"], body["granted"], body["plan"]) == ("8.25", "0.00", "8.25", "0.00")
    assert [(e["amount"], e["category"]) for e in body["expiring"]] == [("1.25", "granted"), ("5.00", "granted")]
    assert datetime.fromisoformat(body["expiring"][0]["expires_at"]) == soon


def test_a_long_user_agent_is_kept_cut_to_512_characters_on_every_row(client, session, internal_headers):
    user = UserFactory(balance="10.00")
    headers = {**internal_headers, "User-Agent": "A" * 600}
    assert deduct(client, headers, user).status_code == 200
    batch = {"charges": [{"user_id": str(user.id), "amount": "1.00", "model": "m", "request_id": "in-a-batch"}]}
    assert client.post("/api/billing/deduct/batch", json=batch, headers=headers).status_code == 200
    agents = session.scalars(select(AuditLog.user_agent).where(AuditLog.action == "usage.charged")).all()
    assert agents == ["A" * 512, "A" * 512]
