"""POST /api/plans/subscribe and /api/plans/subscriptions/<id>/cancel (SPEC 21), as the SaaS's
backend calls them: the answers' fields, and each refusal's exact code with nothing written."""

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from ledger.models import AuditLog, CreditLot, Subscription, UsageLog
from ledger.services.growth import plans
from tests.factories import UserFactory
from tests.helpers import ADMIN, balance_of, stop_the_clock

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2027, 1, 31, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)


@pytest.fixture
def pro(session):
    return plans.create_plan(
        session,
        ADMIN,
        code="pro-monthly",
        name_zh="专业版（月付）",
        name_en="Pro, monthly",
        price="30.00",
        period="month",
        allowance="50.00",
        reason="launch",
    )


@pytest.fixture
def clock(app, monkeypatch):
    return stop_the_clock(app, monkeypatch, T0)


def subscribe(client, headers, user_id, plan="pro-monthly"):
    return client.post("/api/plans/subscribe", json={"user_id": str(user_id), "plan": plan}, headers=headers)


def written(session) -> tuple[int, int, int]:
    """Subscriptions, charges and plan lots in the books."""
    return (
        session.scalar(select(func.count()).select_from(Subscription)),
        session.scalar(select(func.count()).select_from(UsageLog)),
        session.scalar(select(func.count()).where(CreditLot.category == "plan")),
    )


def test_subscribe_answers_201_with_the_subscription_and_the_money_after_it(
    client, session, internal_headers, pro, clock
):
    person = UserFactory(balance="100.00")
    answer = subscribe(client, internal_headers, person.id)
    assert answer.status_code == 201
    body = answer.get_json()
    sub = session.scalar(select(Subscription))
    assert body == {
        "subscription_id": str(sub.id),
        "user_id": str(person.id),
        "plan": "pro-monthly",
        "status": "active",
        "auto_renew": True,
        "current_period_start": "2027-01-31T10:00:00+08:00",
        "current_period_end": "2027-02-28T10:00:00+08:00",
        "balance": "120.00",
        "available": "120.00",
    }
    assert session.scalar(select(UsageLog.request_id)) == f"subscription:{sub.id}:1"


def test_a_second_subscribe_answers_409_naming_the_subscription_and_charges_nothing(
    client, session, internal_headers, pro, clock
):
    person = UserFactory(balance="100.00")
    first = subscribe(client, internal_headers, person.id).get_json()["subscription_id"]
    again = subscribe(client, internal_headers, person.id)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "already_subscribed"
    assert again.get_json()["error"]["subscription_id"] == first
    assert written(session) == (1, 1, 1) and balance_of(session, person) == Decimal("120.0000")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"plan": "max"}, 404, "plan_not_found"),
        ({"user_id": "4c6f0c2e-9b8a-4f4e-9d6b-3c1f8b2a7e10"}, 404, "user_not_found"),
        ({"plan": "Pro Monthly"}, 422, "invalid_request"),
        ({"plan": 7}, 422, "invalid_request"),
        ({"user_id": "me"}, 422, "invalid_request"),
        ({"plan": None}, 422, "invalid_request"),
    ],
)
def test_subscribe_refuses_with_its_exact_code_and_writes_nothing(
    client, session, internal_headers, pro, clock, body, status, code
):
    person = UserFactory(balance="100.00")
    answer = client.post(
        "/api/plans/subscribe",
        json={"user_id": str(person.id), "plan": "pro-monthly", **body},
        headers=internal_headers,
    )
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (status, code)
    assert written(session) == (0, 0, 0) and balance_of(session, person) == Decimal("100.0000")


def test_subscribe_short_of_money_answers_402_and_keeps_only_the_refusals_trace(
    client, session, internal_headers, pro, clock
):
    person = UserFactory(balance="29.99")
    answer = subscribe(client, internal_headers, person.id)
    assert answer.status_code == 402
    assert answer.get_json()["error"] | {"message": ""} == {
        "code": "insufficient_balance",
        "message": "",
        "balance": "29.99",
        "available": "29.99",
    }
    assert written(session) == (0, 0, 0)
    assert session.scalar(select(func.count()).where(AuditLog.action == "usage.insufficient_balance")) == 1


def test_a_retired_plan_answers_410_and_a_disabled_account_403(client, session, internal_headers, pro, clock):
    disabled = UserFactory(balance="100.00", disabled_at=T0)
    assert subscribe(client, internal_headers, disabled.id).get_json()["error"]["code"] == "account_disabled"
    plans.retire_plan(session, ADMIN, "pro-monthly", reason="gone")
    answer = subscribe(client, internal_headers, UserFactory(balance="100.00").id)
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (410, "plan_retired")
    assert written(session) == (0, 0, 0)


def test_cancel_answers_the_subscription_cancelled_and_again_the_same(client, session, internal_headers, pro, clock):
    person = UserFactory(balance="100.00")
    sub_id = subscribe(client, internal_headers, person.id).get_json()["subscription_id"]
    for _ in range(2):
        answer = client.post(f"/api/plans/subscriptions/{sub_id}/cancel", headers=internal_headers)
        assert answer.status_code == 200
        body = answer.get_json()
        assert (body["subscription_id"], body["status"], body["auto_renew"]) == (sub_id, "cancelled", False)
        assert (body["current_period_end"], body["balance"]) == ("2027-02-28T10:00:00+08:00", "120.00")
    assert session.scalar(select(func.count()).where(AuditLog.action == "plan.cancelled")) == 1


@pytest.mark.parametrize("sub_id", ["4c6f0c2e-9b8a-4f4e-9d6b-3c1f8b2a7e10", "nope"])
def test_cancelling_no_subscription_answers_404(client, internal_headers, sub_id):
    answer = client.post(f"/api/plans/subscriptions/{sub_id}/cancel", headers=internal_headers)
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (404, "subscription_not_found")


def test_both_routes_are_for_the_saas_only(client, me, pro):
    assert subscribe(client, {}, me.id).status_code == 401
    assert client.post("/api/plans/subscriptions/x/cancel").status_code == 401


def test_the_document_names_every_code_of_both_routes(client):
    doc = client.get("/api/openapi.json").get_json()

    def codes(path):
        responses = doc["paths"][path]["post"]["responses"]
        return {
            s: set(a["content"]["application/json"].get("examples", {})) for s, a in responses.items() if s[0] != "2"
        }

    subscribe_codes = codes("/api/plans/subscribe")
    assert "insufficient_balance" in subscribe_codes["402"]  # (and a spending limit's, SPEC 22)
    assert {s: subscribe_codes[s] for s in ("403", "404", "409", "410")} == {
        "403": {"account_disabled"},
        "404": {"user_not_found", "plan_not_found"},
        "409": {"already_subscribed"},
        "410": {"plan_retired"},
    }
    assert codes("/api/plans/subscriptions/{subscription_id}/cancel")["404"] == {"subscription_not_found"}
