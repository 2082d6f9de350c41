"""Invitations: binding (and its refusals), rewards paid once, by the API or with the first top-up."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ledger.models import AuditLog, BillingAccount, InviteRelation, LedgerEntry, User
from ledger.services.audit import SYSTEM
from ledger.services.billing import credit
from ledger.services.integrity import find_breaches
from ledger.services.invites import Rewards, reward_invite
from ledger.services.payments import handle_notify
from ledger.services.xorpay import sign
from tests.conftest import XORPAY_SECRET
from tests.factories import InviteFactory, PaymentFactory, UserFactory

REWARDS = Rewards(Decimal("5.00"), Decimal("2.00"))


def bind(client, auth, code):
    return client.post("/api/invites/register", json={"code": code}, headers={"X-CSRFToken": auth.csrf_token("/")})


def balance_of(session, user) -> Decimal:
    return session.scalar(select(BillingAccount.balance).where(BillingAccount.user_id == user.id))


def reward_entries(session) -> list[tuple]:
    rows = session.execute(select(LedgerEntry.user_id, LedgerEntry.amount).where(LedgerEntry.kind == "invite_reward"))
    return sorted((str(u), a) for u, a in rows)


# --- binding ------------------------------------------------------------------------------------


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
        ("empty", 404, "invite_code_not_found"),
        ("second", 409, "already_invited"),
        ("direct_loop", 422, "invite_cycle"),
        ("long_loop", 422, "invite_cycle"),
    ],
)
def test_binding_refusals(client, auth, session, setup, status, code):
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


def test_binding_needs_a_session_and_csrf(client, auth, session):
    assert client.post("/api/invites/register", json={"code": "x"}).status_code == 401
    auth.login(UserFactory())
    assert client.post("/api/invites/register", json={"code": "x"}).status_code == 400


def test_register_with_invite_link_binds_in_the_same_transaction(client, auth, session):
    inviter = UserFactory()
    page = client.get(f"/register?invite={inviter.invite_code}").get_data(as_text=True)
    assert f'value="{inviter.invite_code}"' in page
    response = client.post(
        "/register",
        data={
            "email": "friend@example.com",
            "password": "friend-password",
            "invite": inviter.invite_code,
            "csrf_token": auth.csrf_token("/register"),
        },
    )
    assert response.status_code == 302
    friend = session.scalars(select(User).where(User.email == "friend@example.com")).one()
    assert session.scalars(select(InviteRelation.inviter_id).where(InviteRelation.invitee_id == friend.id)).one() == (
        inviter.id
    )


def test_register_with_an_unknown_invite_code_creates_nothing(client, auth, session):
    response = client.post(
        "/register",
        data={
            "email": "friend@example.com",
            "password": "friend-password",
            "invite": "nobody42",
            "csrf_token": auth.csrf_token("/register"),
        },
    )
    assert response.status_code == 422
    assert "邀请码" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(User)) == 0


# --- reward API ---------------------------------------------------------------------------------


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


def test_reward_errors(client, session, internal_headers):
    UserFactory()
    assert post_reward(client, {}, uuid.uuid4()).status_code == 401
    missing = post_reward(client, internal_headers, UserFactory().id)
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "invite_not_found")
    assert post_reward(client, internal_headers, "not-a-uuid").status_code == 422
    assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "invite_reward")) == 0


def test_the_database_refuses_a_second_reward_entry(session):
    relation = InviteFactory()
    reward_invite(session, invitee_id=relation.invitee_id, rewards=REWARDS, origin=SYSTEM)
    with pytest.raises(IntegrityError, match="uq_ledger_entries_invite_relation_id_user_id"), session.begin_nested():
        credit(
            session,
            user_id=relation.inviter_id,
            amount=Decimal("5.00"),
            kind="invite_reward",
            origin=SYSTEM,
            action="invite.rewarded",
            invite_relation=relation,
        )


# --- with the first top-up ----------------------------------------------------------------------


def notify(session, order, rewards):
    fields = {
        "aoid": order.provider_order_id,
        "order_id": str(order.id),
        "pay_price": f"{order.amount:.2f}",
        "pay_time": "2026-11-25 20:00:00",
    }
    fields["sign"] = sign(*fields.values(), XORPAY_SECRET)
    return handle_notify(session, fields, app_secret=XORPAY_SECRET, origin=SYSTEM, invite_rewards=rewards)


def test_first_top_up_pays_the_reward_in_the_same_transaction(session):
    relation = InviteFactory()
    invitee = session.get(User, relation.invitee_id)
    first, second = PaymentFactory(user=invitee), PaymentFactory(user=invitee, amount=Decimal("10.00"))

    assert notify(session, first, REWARDS)
    assert session.get(BillingAccount, invitee.id).balance == Decimal("52.00")
    assert session.get(BillingAccount, relation.inviter_id).balance == Decimal("5.00")
    assert notify(session, second, REWARDS)  # a second top-up pays no second reward
    assert session.get(BillingAccount, invitee.id).balance == Decimal("62.00")
    assert len(reward_entries(session)) == 2
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "invite.rewarded")).all()
    assert {a.details["trigger"] for a in audit} == {"first_topup"}
    assert list(find_breaches(session)) == []


def test_first_top_up_reward_can_be_switched_off(session):
    relation = InviteFactory()
    order = PaymentFactory(user=session.get(User, relation.invitee_id))
    assert notify(session, order, None)
    assert reward_entries(session) == []
    session.refresh(relation)
    assert relation.rewarded_at is None


def test_reward_api_after_the_first_top_up_is_already_rewarded(client, session, internal_headers):
    relation = InviteFactory()
    notify(session, PaymentFactory(user=session.get(User, relation.invitee_id)), REWARDS)
    assert post_reward(client, internal_headers, relation.invitee_id).get_json()["already_rewarded"] is True
    assert len(reward_entries(session)) == 2


def test_zero_invitee_reward_pays_the_inviter_only(session):
    relation = InviteFactory()
    outcome = reward_invite(
        session, invitee_id=relation.invitee_id, rewards=Rewards(Decimal("5.00"), Decimal("0")), origin=SYSTEM
    )
    assert outcome.rewarded
    assert reward_entries(session) == [(str(relation.inviter_id), Decimal("5.00"))]
    assert list(find_breaches(session)) == []


# --- pages and summary ---------------------------------------------------------------------------


def test_invites_page_lists_invitees_masked_and_rewards(client, auth, session):
    inviter = UserFactory()
    InviteFactory(inviter=inviter, invitee=UserFactory(email="bob.smith@example.com"))
    rewarded = InviteFactory(inviter=inviter, invitee=UserFactory(email="carol@example.org"))
    reward_invite(session, invitee_id=rewarded.invitee_id, rewards=REWARDS, origin=SYSTEM)
    auth.login(inviter)
    page = client.get("/invites").get_data(as_text=True)
    assert "b***@example.com" in page and "c***@example.org" in page and "bob.smith" not in page
    assert f"http://ledger.test/register?invite={inviter.invite_code}" in page
    assert 'data-testid="invited-count">2<' in page and "¥5.00" in page
    summary = client.get("/api/billing/summary").get_json()["invites"]
    assert summary == {
        "code": inviter.invite_code,
        "link": f"http://ledger.test/register?invite={inviter.invite_code}",
        "invited_count": 2,
        "rewards_total": "5.00",
    }


def test_invites_page_binds_a_code_and_shows_refusals(client, auth, session):
    me, friend = UserFactory(), UserFactory(email="dave@example.com")
    auth.login(me)
    refused = client.post("/invites", data={"code": me.invite_code, "csrf_token": auth.csrf_token("/invites")})
    assert refused.status_code == 422 and 'data-testid="bind-error"' in refused.get_data(as_text=True)
    done = client.post(
        "/invites", data={"code": friend.invite_code, "csrf_token": auth.csrf_token("/invites")}, follow_redirects=True
    )
    assert "d***@example.com" in done.get_data(as_text=True)
    assert session.scalars(select(InviteRelation.inviter_id)).one() == friend.id
