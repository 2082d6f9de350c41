"""POST /api/codes/redeem (SPEC 14): the signed-in person, CSRF, `code`; 200 amount and balance; 404,
409, 410, 429 and 403 as SPEC 14 and 13 name them."""

from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ledger.models import AuditLog, LedgerEntry
from ledger.services.books.invariants import find_breaches
from ledger.services.growth.code_batches import create_batch, disable_batch, disable_code
from ledger.services.growth.codes import shown
from tests.factories import UserFactory
from tests.helpers import ADMIN, balance_of


@pytest.fixture
def codes(session):
    _batch, made = create_batch(
        session, ADMIN, count=3, amount="50.00", expires=None, note=None, reason="t", tz=ZoneInfo("Asia/Shanghai")
    )
    return made


def redeem(client, auth, code, **headers):
    headers = {"X-CSRFToken": auth.csrf_token("/"), **headers}
    return client.post("/api/codes/redeem", json={"code": code}, headers=headers)


def test_a_code_credits_its_amount_and_answers_the_new_balance(client, auth, session, codes):
    person = UserFactory(balance="12.00")
    auth.login(person)
    response = redeem(client, auth, shown(codes[0]).lower())
    assert response.status_code == 200
    assert response.get_json() == {"amount": "50.00", "balance": "62.00"}
    assert balance_of(session, person) == Decimal("62.00")
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "redemption")).one()
    assert (entry.redemption_code, entry.user_id) == (codes[0], person.id)
    assert list(find_breaches(session)) == []


def test_refusals_answer_spec_14_codes_and_statuses(client, auth, session, codes):
    used, disabled, _other = codes
    auth.login(UserFactory())
    assert redeem(client, auth, used).status_code == 200
    disable_code(session, ADMIN, disabled, reason="leaked")
    for code, status, name in (
        (used, 409, "code_used"),
        (disabled, 410, "code_disabled"),
        ("AAAA-BBBB-CCCC-DDDD", 404, "code_not_found"),
        ("", 404, "code_not_found"),
    ):
        response = redeem(client, auth, code)
        assert (response.status_code, response.get_json()["error"]["code"]) == (status, name), code
        assert response.get_json()["error"]["message"]


def test_a_code_of_a_disabled_batch_is_410_code_disabled(client, auth, session):
    batch, (code,) = create_batch(
        session, ADMIN, count=1, amount="5.00", expires=None, note=None, reason="t", tz=ZoneInfo("Asia/Shanghai")
    )
    disable_batch(session, ADMIN, batch.id, reason="gone")
    auth.login(UserFactory())
    response = redeem(client, auth, code)
    assert (response.status_code, response.get_json()["error"]["code"]) == (410, "code_disabled")


def test_the_eleventh_try_after_ten_unknown_codes_is_429(client, auth, session, codes):
    auth.login(UserFactory())
    assert [redeem(client, auth, f"NOPE-{i}").status_code for i in range(10)] == [404] * 10
    response = redeem(client, auth, codes[0])
    assert (response.status_code, response.get_json()["error"]["code"]) == (429, "too_many_requests")


def test_a_json_number_or_missing_code_or_a_wrong_body_is_422_and_no_wrong_try(client, auth, session):
    person = UserFactory()
    auth.login(person)
    token = {"X-CSRFToken": auth.csrf_token("/")}
    for body, field in (({"code": 1234}, "code"), ({}, "code"), (["x"], None)):
        response = client.post("/api/codes/redeem", json=body, headers=token)
        assert response.status_code == 422 and response.get_json()["error"]["code"] == "invalid_request"
        assert response.get_json()["error"].get("field") == field
    refused = session.scalars(select(AuditLog).where(AuditLog.user_id == person.id, AuditLog.action == "code.refused"))
    assert refused.all() == []  # malformed input is not a guess: nothing written, nothing counted


def test_signed_out_is_401_and_without_csrf_400(client, auth, session, codes):
    assert client.post("/api/codes/redeem", json={"code": codes[0]}).status_code == 401
    auth.login(UserFactory())
    response = client.post("/api/codes/redeem", json={"code": codes[0]})
    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "csrf_failed")
