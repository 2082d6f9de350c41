"""Invitations through the API: POST /api/invites/register (binding and its refusals) and /api/invites/reward."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.models import AuditLog, BillingAccount, InviteRelation, LedgerEntry, User
from ledger.services.books.invariants import find_breaches
from tests.factories import InviteFactory, PaymentFactory, UserFactory
from tests.helpers import reward_entries, settle_by_notify


def bind(client, auth, code):
    return client.post("/api/invites/register", json={"code": code}, headers={"X-CSRFToken": auth.csrf_token("/")})


# --- binding --------------------------------------------------------------------------------------


def test_binding_a_code_records_the_inviter_and_audits(client, auth, session):
    inviter = UserFactory(email="alice@example.com")
    invitee = UserFactory()
    auth.login(invitee)
    response = bind(client, auth, f"  {inviter.invite_code.upper()} ")
    assert response.status_code == 201
    assert response.get_json()["inviter"] == "a***@example.com"
    relation = session.scalars(select(InviteRelation)).one()
    assert (relation.inviter_id, relation.invitee_id, relation.rewarded_at) == (inviter.id, invitee.id, None)
    actions = set(session.scalars(select(AuditLog.action).where(AuditLog.action.like("invite.%"))))
    assert actions == {"invite.bound", "invite.gained"}


def test_binding_names_the_inviter_by_username_when_there_is_one(client, auth, session):
    inviter = UserFactory(username="alice")
    auth.login(UserFactory())
    assert bind(client, auth, inviter.invite_code).get_json()["inviter"] == "alice"


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        ("own", 422, "self_invite"),
        ("unknown", 404, "invite_code_not_found"),
        ("empty", 422, "invalid_request"),  # no code at all is bad input, not an unknown code
        ("second", 409, "already_invited"),
        ("direct_loop", 422, "invite_cycle"),
        ("long_loop", 422, "invite_cycle"),
    ],
)
def test_binding_refuses_own_unknown_second_and_looping_codes(client, auth, session, setup, status, code):
    me = UserFactory()
    target = {
        "own": lambda: me.invite_code,
        "unknown": lambda: "nobody42",
        "empty": lambda: "",
        "second": lambda: (InviteFactory(invitee=me), UserFactory().invite_code)[1],
        # I invited A: A's code cannot become my inviter.
        "direct_loop": lambda: InviteFactory(inviter=me).invitee.invite_code,
        # I invited A, A invited B, B invited C: C's code cannot become my inviter.
        "long_loop": lambda: _chain_from(me, 3).invite_code,
    }[setup]()
    relations_before = session.scalar(select(func.count()).select_from(InviteRelation))
    auth.login(me)
    response = bind(client, auth, target)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert session.scalar(select(func.count()).select_from(InviteRelation)) == relations_before


def _chain_from(first, length):
    person = first
    for _ in range(length):
        person = InviteFactory(inviter=person).invitee
    return person


@pytest.mark.parametrize("code", ["ab\x00cd", "\ud800", "\udfff" * 3, "x" * 10_000, 42, ["a"], {"a": 1}])
def test_binding_a_code_that_can_belong_to_no_one_is_a_4xx_and_writes_nothing(client, auth, session, code):
    auth.login(UserFactory())
    audits = session.scalar(select(func.count()).select_from(AuditLog))
    response = bind(client, auth, code)
    assert (response.status_code, response.get_json()["error"]["code"]) in {
        (404, "invite_code_not_found"),
        (422, "invalid_request"),
    }
    assert session.scalar(select(func.count()).select_from(InviteRelation)) == 0
    assert session.scalar(select(func.count()).select_from(AuditLog)) == audits


def test_binding_needs_a_session_and_csrf(client, auth, session):
    assert client.post("/api/invites/register", json={"code": "x"}).status_code == 401
    auth.login(UserFactory())
    assert client.post("/api/invites/register", json={"code": "x"}).status_code == 400


# --- reward ---------------------------------------------------------------------------------------


def post_reward(client, headers, invitee_id):
    return client.post("/api/invites/reward", json={"invitee_id": str(invitee_id)}, headers=headers)


def test_reward_pays_both_sides_once(client, session, internal_headers):
    relation = InviteFactory()
    inviter, invitee = relation.inviter_id, relation.invitee_id

    first = post_reward(client, internal_headers, invitee)
    assert (first.status_code, first.get_json()) == (
        200,
        {"rewarded": True, "already_rewarded": False, "inviter_reward": "5.00", "invitee_reward": "2.00"},
    )
    again = post_reward(client, internal_headers, invitee)
    assert again.get_json() == {
        "rewarded": False,
        "already_rewarded": True,
        "inviter_reward": "5.00",
        "invitee_reward": "2.00",
    }

    assert reward_entries(session) == sorted([(str(inviter), Decimal("5.00")), (str(invitee), Decimal("2.00"))])
    assert session.get(BillingAccount, inviter).balance == Decimal("5.00")
    assert session.get(BillingAccount, invitee).balance == Decimal("2.00")
    session.refresh(relation)
    assert relation.rewarded_at is not None
    assert (relation.inviter_reward, relation.invitee_reward) == (Decimal("5.00"), Decimal("2.00"))
    assert list(find_breaches(session)) == []


def test_reward_refuses_a_bad_token_an_uninvited_person_and_a_bad_id(client, session, internal_headers):
    UserFactory()
    assert post_reward(client, {}, uuid.uuid4()).status_code == 401
    missing = post_reward(client, internal_headers, UserFactory().id)
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "invite_not_found")
    assert post_reward(client, internal_headers, "not-a-uuid").status_code == 422
    assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "invite_reward")) == 0


def test_reward_api_after_the_first_top_up_is_already_rewarded(client, session, internal_headers, settings):
    relation = InviteFactory()
    settle_by_notify(session, PaymentFactory(user=session.get(User, relation.invitee_id)), settings)
    assert post_reward(client, internal_headers, relation.invitee_id).get_json()["already_rewarded"] is True
    assert len(reward_entries(session)) == 2
