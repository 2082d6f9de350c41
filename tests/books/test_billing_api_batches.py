"""Batch charges (SPEC 12): one transaction, every item answered as one deduct would be, in order."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from ledger.models import AuditLog, LedgerEntry, UsageLog
from ledger.services.books.holds import capture_hold, place_hold
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL
from tests.factories import UserFactory
from tests.helpers import balance_of, count_rows

BATCH = "/api/billing/deduct/batch"


def item(user, request_id, amount="1.00", model="image-studio-v2", **extra):
    return {"user_id": str(user.id), "amount": amount, "model": model, "request_id": request_id, **extra}


def batch(client, headers, charges):
    return client.post(BATCH, json={"charges": charges}, headers=headers)


def test_a_batch_answers_every_outcome_in_order(client, session, internal_headers):
    alice, bob = UserFactory(balance="5.00"), UserFactory(balance="1.00")
    place_hold(session, user_id=bob.id, amount="0.50", model="v", request_id="held", ctx=INTERNAL)
    earlier = client.post("/api/billing/deduct", json=item(alice, "earlier", "0.50"), headers=internal_headers)
    response = batch(
        client,
        internal_headers,
        [
            item(alice, "a1", "2.00", params={"images": 2}),  # charged: 4.50 -> 2.50
            item(alice, "a2", "2.50"),  # charged: 2.50 -> 0.00 (earlier took 0.50 of the 5.00)
            item(alice, "a1", "2.00", params={"images": 2}),  # replayed within the batch
            item(alice, "earlier", "0.50"),  # replayed across calls
            item(alice, "earlier", "0.60"),  # request_id_conflict: another amount
            item(alice, "a3", "0.51"),  # insufficient_balance: nothing left
            item(bob, "b1", "0.60"),  # insufficient_balance on the available amount (1.00 - 0.50 held)
            item(bob, "held", "0.50"),  # request_id_conflict: a hold has it
            item(bob, "b2", "0.50"),  # charged: exactly the available amount
            {"user_id": str(uuid.uuid4()), "amount": "1.00", "model": "m", "request_id": "x"},  # user_not_found
            item(bob, "b3", " 1.00"),  # invalid_request
        ],
    )
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [
        (0, "charged"),
        (1, "charged"),
        (2, "replayed"),
        (3, "replayed"),
        (4, "request_id_conflict"),
        (5, "insufficient_balance"),
        (6, "insufficient_balance"),
        (7, "request_id_conflict"),
        (8, "charged"),
        (9, "user_not_found"),
        (10, "invalid_request"),
    ]
    assert [results[i]["balance"] for i in (0, 1, 2, 3, 8)] == ["2.50", "0.00", "2.50", "4.50", "0.50"]
    assert results[2]["usage_id"] == results[0]["usage_id"] and results[2]["replayed"] is True
    assert results[3]["usage_id"] == earlier.get_json()["usage_id"]
    assert results[6]["error"] == {
        "code": "insufficient_balance",
        "message": "可用余额（¥0.50）不足以支付这笔扣费。",
        "balance": "1.00",
        "available": "0.50",
    }
    assert results[10]["error"]["field"] == "amount"
    assert (balance_of(session, alice), balance_of(session, bob)) == (Decimal("0.0000"), Decimal("0.5000"))
    assert count_rows(session, UsageLog) == 4  # earlier, a1, a2, b2
    refusals = session.scalars(select(AuditLog).where(AuditLog.action == "usage.insufficient_balance")).all()
    assert sorted(a.details["request_id"] for a in refusals) == ["a3", "b1"]
    assert list(find_breaches(session)) == []


def test_a_persons_items_apply_in_their_order_and_entries_follow_it(client, session, internal_headers):
    user = UserFactory(balance="10.00")
    charges = [item(user, f"r{i}", amount) for i, amount in enumerate(["1.00", "2.00", "3.00"])]
    results = batch(client, internal_headers, charges).get_json()["results"]
    assert [r["balance"] for r in results] == ["9.00", "7.00", "4.00"]
    entries = session.scalars(
        select(LedgerEntry.balance_after).where(LedgerEntry.user_id == user.id).order_by(LedgerEntry.id)
    ).all()
    assert entries == [Decimal("10.0000"), Decimal("9.0000"), Decimal("7.0000"), Decimal("4.0000")]
    assert list(find_breaches(session)) == []


@pytest.mark.parametrize(
    "body",
    [
        {"charges": []},
        {"charges": [{"x": 1}] * 1001},
        {"charges": {"a": 1}},
        {"charges": [1, 2]},
        {"charges": "x"},
        {},
        [],
    ],
)
def test_a_body_that_is_not_1_to_1000_objects_is_422_and_writes_nothing(client, session, internal_headers, body):
    user = UserFactory(balance="10.00")
    if body == {"charges": [{"x": 1}] * 1001}:
        body = {"charges": [item(user, f"r{i}", "0.01") for i in range(1001)]}
    audits = count_rows(session, AuditLog)
    response = client.post(BATCH, json=body, headers=internal_headers)
    assert (response.status_code, response.get_json()["error"]["code"]) == (422, "invalid_request")
    assert (count_rows(session, UsageLog), count_rows(session, AuditLog)) == (0, audits)


def test_a_thousand_items_are_charged_in_one_call(client, session, internal_headers):
    people = [UserFactory(balance="10.00") for _ in range(10)]
    charges = [item(people[i % 10], f"r{i}", "0.01") for i in range(1000)]
    results = batch(client, internal_headers, charges).get_json()["results"]
    assert {r["status"] for r in results} == {"charged"}
    assert {balance_of(session, p) for p in people} == {Decimal("9.0000")}
    assert list(find_breaches(session)) == []


def test_a_batch_needs_the_internal_token(client, session):
    assert client.post(BATCH, json={"charges": []}).status_code == 401


def test_a_captured_holds_request_id_is_answered_as_a_single_deduct_answers_it(client, session, internal_headers):
    """A capture writes a usage log under the hold's request id, so the pair has both a hold and a
    usage log: the batch's one look-up must still answer what a deduct answers."""
    user = UserFactory(balance="5.00")
    hold = place_hold(session, user_id=user.id, amount="2.00", model="v", request_id="job", ctx=INTERNAL).hold
    capture_hold(session, hold_id=hold.id, amount="1.50", ctx=INTERNAL)
    single = client.post("/api/billing/deduct", json=item(user, "job", "1.50", model="v"), headers=internal_headers)
    results = batch(client, internal_headers, [item(user, "job", "1.50", model="v"), item(user, "new", "0.50")])
    results = results.get_json()["results"]
    assert (single.status_code, single.get_json()["error"]["code"]) == (409, "request_id_conflict")
    assert [r["status"] for r in results] == ["request_id_conflict", "charged"]
    assert results[1]["balance"] == "3.00"
    assert count_rows(session, UsageLog) == 2  # the capture's and "new"
    assert list(find_breaches(session)) == []
