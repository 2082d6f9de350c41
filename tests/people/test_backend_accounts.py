"""Accounts for the SaaS's own backend (SPEC 25): POST /api/users creates or finds a person, the
look-ups read their account and money, and `users create --external-id` does it from the console."""

import uuid

import pytest
from sqlalchemy import func, select

from ledger.models import AuditLog, User
from ledger.services.books.holds import place_hold
from ledger.services.context import INTERNAL
from ledger.services.people.backend_accounts import create_or_find_user
from tests.factories import UserFactory
from tests.helpers import new_request_id, run_together

NOBODY = "0b5e4c1a-7f3d-4e2b-9a6c-1d8f2e3b4c5a"  # an id no account has


def create(client, headers, **body):
    return client.post("/api/users", json=body, headers=headers)


def test_a_new_person_is_made_without_a_password_and_read_back_by_every_key(client, internal_headers, session):
    made = create(client, internal_headers, email="Ada@Example.com", external_id="saas:42", username="ada_l")
    assert made.status_code == 201
    account = made.get_json()
    assert {k: account[k] for k in ("email", "external_id", "username", "disabled", "balance", "available")} == {
        "email": "ada@example.com",
        "external_id": "saas:42",
        "username": "ada_l",
        "disabled": False,
        "balance": "0.00",
        "available": "0.00",
    }
    assert (account["held"], account["paid"], account["granted"], account["plan"]) == ("0.00",) * 4
    user = session.get(User, uuid.UUID(account["user_id"]))
    assert user.password_hash is None
    for path in (f"/api/users/{user.id}", "/api/users?email=ADA@example.com", "/api/users?external_id=saas:42"):
        assert client.get(path, headers=internal_headers).get_json() == account, path
    audit = session.scalars(select(AuditLog).where(AuditLog.user_id == user.id)).one()
    assert (audit.action, audit.actor, audit.details["external_id"]) == ("user.registered", "internal", "saas:42")


def test_the_same_email_and_external_id_again_answer_the_same_account_with_200(client, internal_headers, session):
    first = create(client, internal_headers, email="bo@example.com", external_id="u-7").get_json()
    again = create(client, internal_headers, email="BO@example.com", external_id="u-7")
    by_email_only = create(client, internal_headers, email="bo@example.com")
    assert (again.status_code, by_email_only.status_code) == (200, 200)
    assert again.get_json() == by_email_only.get_json() == first
    assert session.scalar(select(func.count()).select_from(User).where(User.email == "bo@example.com")) == 1


def test_an_account_found_by_email_without_an_external_id_takes_the_one_sent(client, internal_headers, session):
    person = UserFactory(email="cy@example.com", balance="12.50")  # signed up by password on Ledger
    found = create(client, internal_headers, email="cy@example.com", external_id="crm-9")
    assert found.status_code == 200
    assert (found.get_json()["user_id"], found.get_json()["balance"]) == (str(person.id), "12.50")
    session.refresh(person)
    assert person.external_id == "crm-9"
    assert person.password_hash is not None  # their password stays
    actions = session.scalars(select(AuditLog.action).where(AuditLog.user_id == person.id)).all()
    assert sorted(actions) == ["balance.adjusted", "user.external_id_set"]  # the factory's credit, then this


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "dee@example.com", "external_id": "other"}, "email"),  # the email's account has another id
        ({"email": "new@example.com", "external_id": "d-1"}, "external_id"),  # the id is another account's
        ({"email": "old@example.com", "external_id": "d-1"}, "external_id"),  # found by email, the id is taken
    ],
)
def test_an_email_or_external_id_of_another_account_is_a_409_and_writes_nothing(
    client, internal_headers, session, body, field
):
    UserFactory(email="dee@example.com", external_id="d-1")
    UserFactory(email="old@example.com")
    users, audits = (
        session.scalar(select(func.count()).select_from(User)),
        session.scalar(select(func.count()).select_from(AuditLog)),
    )
    refused = create(client, internal_headers, **body)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "user_conflict"
    assert refused.get_json()["error"]["field"] == field
    assert session.scalar(select(func.count()).select_from(User)) == users
    assert session.scalar(select(func.count()).select_from(AuditLog)) == audits
    assert session.scalar(select(User.external_id).where(User.email == "old@example.com")) is None


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "有效的邮箱地址"),
        ({"email": "e@example.com", "external_id": "has space"}, "external_id", "A-Z"),
        ({"email": "e@example.com", "external_id": ""}, "external_id", "A-Z"),
        ({"email": "e@example.com", "external_id": "x" * 129}, "external_id", "A-Z"),
        ({"email": "e@example.com", "username": "a b"}, "username", "3"),
        ({"external_id": "no-email"}, "email", None),
    ],
)
def test_bad_fields_are_a_422_naming_the_field_in_chinese_by_default(
    client, internal_headers, session, body, field, message
):
    refused = create(client, internal_headers, **body)
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid_request", field)
    if message:
        assert message in error["message"]
    assert session.scalar(select(func.count()).select_from(User)) == 0


def test_a_taken_username_is_a_409_and_makes_no_account(client, internal_headers, session):
    UserFactory(username="Grace")
    refused = create(client, internal_headers, email="g@example.com", username="grace")
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "username_taken")
    assert session.scalar(select(User.id).where(User.email == "g@example.com")) is None


def test_the_account_shows_held_available_and_the_kinds_of_money(client, internal_headers, session):
    person = UserFactory(balance="30.00")  # an adjustment: given money
    place_hold(session, user_id=person.id, amount="7.25", model="video", request_id=new_request_id(), ctx=INTERNAL)
    account = client.get(f"/api/users/{person.id}", headers=internal_headers).get_json()
    assert {k: account[k] for k in ("balance", "held", "available", "paid", "granted", "plan")} == {
        "balance": "30.00",
        "held": "7.25",
        "available": "22.75",
        "paid": "0.00",
        "granted": "30.00",
        "plan": "0.00",
    }


@pytest.mark.parametrize(
    "path",
    [
        f"/api/users/{NOBODY}",
        "/api/users/not-a-uuid",
        "/api/users?email=nobody@example.com",
        "/api/users?external_id=nobody",
    ],
)
def test_an_unknown_person_is_a_404_user_not_found(client, internal_headers, session, path):
    missing = client.get(path, headers=internal_headers)
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "user_not_found")


@pytest.mark.parametrize("query", ["", "?email=a@example.com&external_id=x"])
def test_a_look_up_takes_exactly_one_key(client, internal_headers, session, query):
    refused = client.get(f"/api/users{query}", headers=internal_headers)
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (422, "invalid_request")


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/users"), ("get", "/api/users?email=a@example.com"), ("get", f"/api/users/{NOBODY}")],
)
def test_every_route_needs_the_internal_token(client, session, method, path):
    answer = getattr(client, method)(path, json={"email": "a@example.com"}, headers={"x-internal-token": "wrong"})
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (401, "unauthorized")
    assert session.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.committed
def test_twenty_parallel_creates_of_one_person_make_one_account(committed):
    def make(_i):
        with committed.session() as session:
            found = create_or_find_user(session, email="race@example.com", external_id="race-1", ctx=INTERNAL)
            return found.user.id, found.created

    results = run_together(20, make)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({user_id for user_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 19 + [True]
    with committed.session() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1
        made = session.scalars(select(AuditLog.action).where(AuditLog.action == "user.registered")).all()
        assert made == ["user.registered"]


@pytest.mark.committed
def test_parallel_claims_of_one_external_id_by_two_emails_give_it_to_one(committed):
    def make(i):
        with committed.session() as session:
            return create_or_find_user(session, email=f"p{i % 2}@example.com", external_id="shared", ctx=INTERNAL)

    results = run_together(10, make)
    conflicts = [r for r in results if getattr(r, "code", None) == "user_conflict"]
    found = [r for r in results if not isinstance(r, Exception)]
    assert len(conflicts) + len(found) == 10, results
    with committed.session() as session:
        owners = session.scalars(select(User.email).where(User.external_id == "shared")).all()
        assert len(owners) == 1
        assert {r.user.email for r in found} == set(owners)


def test_users_create_takes_an_external_id_and_makes_no_password_when_asked(app, session):
    runner = app.test_cli_runner()
    made = runner.invoke(args=["users", "create", "fay@example.com", "--external-id", "saas:77", "--no-password"])
    assert made.exit_code == 0, made.output
    user = session.scalar(select(User).where(User.email == "fay@example.com"))
    assert (str(user.id), user.external_id, user.password_hash) == (made.stdout.strip(), "saas:77", None)


def test_an_email_is_found_as_it_was_stored(client, internal_headers, session):
    made = create(client, internal_headers, email="jose\u0301@xn--bcher-kva.de").get_json()
    assert made["email"] == "jos\u00e9@b\u00fccher.de"  # composed, the domain in Unicode
    found = client.get("/api/users", query_string={"email": "jose\u0301@xn--bcher-kva.de"}, headers=internal_headers)
    assert (found.status_code, found.get_json()["user_id"]) == (200, made["user_id"])
    missing = client.get("/api/users?email=nobody@example.com", headers={**internal_headers, "Accept-Language": "en"})
    assert missing.get_json()["error"]["message"] == "No account has this email."


@pytest.mark.committed
def test_parallel_creates_claiming_one_username_make_one_account_and_refuse_the_rest(committed):
    def make(i):
        with committed.session() as session:
            return create_or_find_user(session, email=f"u{i}@example.com", username="same_name", ctx=INTERNAL)

    results = run_together(8, make)
    made = [r for r in results if not isinstance(r, Exception)]
    taken = [r for r in results if getattr(r, "code", None) == "username_taken"]
    assert (len(made), len(taken)) == (1, 7), results
