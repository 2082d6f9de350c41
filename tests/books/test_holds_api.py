"""The holds API (SPEC 11): every route, status and error code, money as strings."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger.models import Hold, UsageLog
from ledger.services.books.holds import place_hold
from ledger.services.context import INTERNAL
from tests.factories import UserFactory
from tests.helpers import count_rows

HOLDS = "/api/billing/holds"


def place(client, headers, user, **overrides):
    body = {"user_id": str(user.id), "amount": "4.00", "model": "motion-video-1", "request_id": "job-1"}
    return client.post(HOLDS, json={**body, **overrides}, headers=headers)


def capture(client, headers, hold_id, amount):
    return client.post(f"{HOLDS}/{hold_id}/capture", json={"amount": amount}, headers=headers)


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]["code"]


def test_place_answers_201_with_the_hold_and_the_available_amount(client, session, internal_headers):
    user = UserFactory(balance="10.00")
    response = place(client, internal_headers, user, params={"seconds": 5}, ttl_seconds=600)
    assert response.status_code == 201
    body = response.get_json()
    created, expires = datetime.fromisoformat(body["created_at"]), datetime.fromisoformat(body["expires_at"])
    assert expires - created == timedelta(seconds=600)
    assert {k: body[k] for k in ("user_id", "amount", "status", "balance", "available", "replayed")} == {
        "user_id": str(user.id),
        "amount": "4.00",
        "status": "active",
        "balance": "10.00",
        "available": "6.00",
        "replayed": False,
    }
    assert (body["captured_amount"], body["released_amount"], body["usage_id"], body["settled_at"]) == (
        None,
        None,
        None,
        None,
    )
    again = place(client, internal_headers, user, params={"seconds": 5}, ttl_seconds=600)
    assert (again.status_code, again.get_json()["hold_id"], again.get_json()["replayed"]) == (
        200,
        body["hold_id"],
        True,
    )


def test_place_refusals(client, session, internal_headers):
    user = UserFactory(balance="5.00")
    short = place(client, internal_headers, user, amount="5.01")
    assert error_of(short) == (402, "insufficient_balance")
    assert (short.get_json()["error"]["balance"], short.get_json()["error"]["available"]) == ("5.00", "5.00")
    assert short.get_json()["error"]["message"] == "可用余额（¥5.00）不足以冻结这笔金额。"  # worded for a hold
    english = place(client, {**internal_headers, "Accept-Language": "en"}, user, amount="5.01")
    assert english.get_json()["error"]["message"] == "The available balance (¥5.00) is too low to hold this amount."
    assert error_of(place(client, internal_headers, user, user_id=str(uuid.uuid4()))) == (404, "user_not_found")
    place(client, internal_headers, user)
    assert error_of(place(client, internal_headers, user, amount="3.00")) == (409, "request_id_conflict")
    for bad in ({"ttl_seconds": 59}, {"ttl_seconds": 86_401}, {"amount": 4}, {"amount": "1e1"}, {"user_id": "x"}):
        assert error_of(place(client, internal_headers, user, request_id="job-2", **bad)) == (422, "invalid_request")
    assert place(client, {}, user, request_id="job-3").status_code == 401
    assert count_rows(session, Hold) == 1


def test_capture_and_its_replay_answer_the_settlement(client, session, internal_headers):
    user = UserFactory(balance="10.00")
    hold_id = place(client, internal_headers, user).get_json()["hold_id"]
    first = capture(client, internal_headers, hold_id, "2.50")
    assert first.status_code == 200
    body = first.get_json()
    keys = ("status", "amount", "held_amount", "captured_amount", "released_amount", "balance", "available")
    assert {k: body[k] for k in keys} == {
        "status": "captured",
        "amount": "4.00",  # the hold's, as SPEC 11 names it
        "held_amount": "4.00",  # the same, by a name a reader cannot take for what was captured
        "captured_amount": "2.50",
        "released_amount": "1.50",
        "balance": "7.50",
        "available": "7.50",
    }
    assert session.get(UsageLog, uuid.UUID(body["usage_id"])).amount == Decimal("2.5000")
    again = capture(client, internal_headers, hold_id, "2.50")
    assert (again.status_code, again.get_json()) == (200, {**body, "replayed": True})


def test_capture_refusals(client, session, internal_headers):
    user = UserFactory(balance="10.00")
    hold_id = place(client, internal_headers, user).get_json()["hold_id"]
    assert error_of(capture(client, internal_headers, uuid.uuid4(), "1.00")) == (404, "hold_not_found")
    assert error_of(capture(client, internal_headers, "not-an-id", "1.00")) == (404, "hold_not_found")
    assert error_of(capture(client, internal_headers, hold_id, "4.01")) == (422, "capture_exceeds_hold")
    for bad in ("0", "-1", 1, None, " 1.00"):
        assert error_of(capture(client, internal_headers, hold_id, bad)) == (422, "invalid_request")
    capture(client, internal_headers, hold_id, "1.00")
    settled = capture(client, internal_headers, hold_id, "2.00")
    assert error_of(settled) == (409, "hold_settled")
    assert settled.get_json()["error"]["hold_status"] == "captured"
    assert error_of(client.post(f"{HOLDS}/{hold_id}/release", headers=internal_headers)) == (409, "hold_settled")


@pytest.mark.parametrize("body", [None, {}])
def test_release_takes_no_body_and_answers_the_same_again(client, session, internal_headers, body):
    user = UserFactory(balance="10.00")
    hold_id = place(client, internal_headers, user).get_json()["hold_id"]
    release = f"{HOLDS}/{hold_id}/release"
    first = client.post(release, json=body, headers=internal_headers)
    assert first.status_code == 200
    assert {k: first.get_json()[k] for k in ("status", "released_amount", "balance", "available", "replayed")} == {
        "status": "released",
        "released_amount": "4.00",
        "balance": "10.00",
        "available": "10.00",
        "replayed": False,
    }
    again = client.post(release, headers=internal_headers)
    assert again.get_json() == {**first.get_json(), "replayed": True}
    assert error_of(client.post(f"{HOLDS}/{uuid.uuid4()}/release", headers=internal_headers)) == (
        404,
        "hold_not_found",
    )
    assert error_of(client.post(release, data="x", headers=internal_headers)) == (422, "invalid_request")


def test_get_shows_the_hold_expired_from_the_instant_it_is_due(client, session, internal_headers):
    user = UserFactory(balance="10.00")
    ago = datetime.now(UTC) - timedelta(hours=2)
    held = place_hold(
        session,
        user_id=user.id,
        amount="3.00",
        model="m",
        request_id="old",
        ttl_seconds=60,
        ctx=INTERNAL.at(ago),
    )
    shown = client.get(f"{HOLDS}/{held.hold.id}", headers=internal_headers)
    assert shown.status_code == 200
    body = shown.get_json()
    assert (body["status"], body["released_amount"], body["captured_amount"]) == ("expired", "3.00", None)
    assert datetime.fromisoformat(body["settled_at"]) == datetime.fromisoformat(body["expires_at"])
    assert error_of(client.get(f"{HOLDS}/{uuid.uuid4()}", headers=internal_headers)) == (404, "hold_not_found")
    assert client.get(f"{HOLDS}/{held.hold.id}").status_code == 401


def test_summary_shows_held_and_available(client, auth, session, internal_headers):
    user = UserFactory(balance="10.00")
    place(client, internal_headers, user, amount="3.50")
    auth.login(user)
    summary = client.get("/api/billing/summary").get_json()
    assert (summary["balance"], summary["held"], summary["available"]) == ("10.00", "3.50", "6.50")
    page = client.get("/").get_data(as_text=True)
    assert 'data-testid="on-hold"' in page and "¥3.50" in page and "¥6.50" in page
