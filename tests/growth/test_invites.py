"""The invites service: rewards paid once, with the first top-up or on request, and the database backing it."""

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ledger.db import atomic
from ledger.models import AuditLog, BillingAccount, InviteRelation, User
from ledger.services.books.accounts import credit
from ledger.services.books.invariants import find_breaches
from ledger.services.context import SYSTEM
from ledger.services.growth.invites import reward_invite
from tests.factories import InviteFactory, PaymentFactory, UserFactory
from tests.helpers import balance_of, reward_entries, settle_by_notify


def test_the_database_refuses_a_second_reward_entry(session, settings):
    relation = InviteFactory()
    reward_invite(session, invitee_id=relation.invitee_id, ctx=SYSTEM.using(settings))
    with pytest.raises(IntegrityError, match="uq_ledger_entries_invite_relation_id_user_id"), atomic(session):
        credit(
            session,
            user_id=relation.inviter_id,
            amount=Decimal("5.00"),
            kind="invite_reward",
            ctx=SYSTEM,
            action="invite.rewarded",
            invite_relation=relation,
        )


# --- with the first top-up ------------------------------------------------------------------------


def test_first_top_up_pays_the_reward_in_the_same_transaction(session, settings):
    relation = InviteFactory()
    invitee = session.get(User, relation.invitee_id)
    first, second = PaymentFactory(user=invitee), PaymentFactory(user=invitee, amount=Decimal("10.00"))

    assert settle_by_notify(session, first, settings)
    assert session.get(BillingAccount, invitee.id).balance == Decimal("52.00")
    assert session.get(BillingAccount, relation.inviter_id).balance == Decimal("5.00")
    assert settle_by_notify(session, second, settings)  # a second top-up pays no second reward
    assert session.get(BillingAccount, invitee.id).balance == Decimal("62.00")
    assert len(reward_entries(session)) == 2
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "invite.rewarded")).all()
    assert {a.details["trigger"] for a in audit} == {"first_topup"}
    assert list(find_breaches(session)) == []


def test_first_top_up_reward_can_be_switched_off(session, settings):
    relation = InviteFactory()
    order = PaymentFactory(user=session.get(User, relation.invitee_id))
    assert settle_by_notify(session, order, replace(settings, INVITE_REWARD_ON_FIRST_TOPUP=False))
    assert reward_entries(session) == []
    session.refresh(relation)
    assert relation.rewarded_at is None


def test_zero_invitee_reward_pays_the_inviter_only(session, settings):
    relation = InviteFactory()
    outcome = reward_invite(
        session,
        invitee_id=relation.invitee_id,
        ctx=SYSTEM.using(replace(settings, INVITE_REWARD_INVITEE=Decimal("0"))),
    )
    assert outcome.rewarded
    assert reward_entries(session) == [(str(relation.inviter_id), Decimal("5.00"))]
    assert list(find_breaches(session)) == []


# --- against farming (SPEC 19) --------------------------------------------------------------------


def test_three_own_accounts_paying_one_yuan_each_earn_nothing(session, settings):
    """The review's farm: three accounts on one's own code, ¥1.00 each. It paid ¥24.00 of credit for
    ¥3.00; now the bindings stand, nobody is rewarded, and each relation says why."""
    inviter = UserFactory()
    relations = [InviteFactory(inviter=inviter) for _ in range(3)]
    for relation in relations:
        assert settle_by_notify(session, PaymentFactory(user=relation.invitee, amount=Decimal("1.00")), settings)
    assert balance_of(session, inviter) == 0
    assert [balance_of(session, r.invitee_id) for r in relations] == [Decimal("1.00")] * 3
    assert reward_entries(session) == []
    for relation in relations:
        session.refresh(relation)
        assert (relation.rewarded_at, relation.unrewarded_reason) == (None, "first_topup_too_small")
    refused = session.scalars(select(AuditLog).where(AuditLog.action == "invite.not_rewarded")).all()
    assert sorted(a.details["reason"] for a in refused) == ["first_topup_too_small"] * 3
    assert {a.details["topup"] for a in refused} == {"1.00"}
    # a later, larger top-up does not pay what the first one missed
    assert settle_by_notify(session, PaymentFactory(user=relations[0].invitee, amount=Decimal("500.00")), settings)
    assert reward_entries(session) == [] and balance_of(session, inviter) == 0
    assert list(find_breaches(session)) == []


@pytest.mark.parametrize(("amount", "rewarded"), [("9.99", False), ("10.00", True), ("10.01", True)])
def test_the_first_top_up_pays_from_exactly_invite_reward_min_topup(session, settings, amount, rewarded):
    relation = InviteFactory()
    assert settle_by_notify(session, PaymentFactory(user=relation.invitee, amount=Decimal(amount)), settings)
    session.refresh(relation)
    assert (relation.rewarded_at is not None) is rewarded
    assert balance_of(session, relation.inviter_id) == (Decimal("5.00") if rewarded else 0)


def test_an_inviter_is_rewarded_at_most_max_per_month_times_in_30_days(session, settings):
    limited = replace(settings, INVITE_REWARD_MAX_PER_MONTH=2)
    inviter = UserFactory()
    old = InviteFactory(inviter=inviter)
    reward_invite(session, invitee_id=old.invitee_id, ctx=SYSTEM.using(limited))
    session.execute(
        update(InviteRelation).where(InviteRelation.id == old.id).values(rewarded_at=func.now() - timedelta(days=31))
    )
    relations = [InviteFactory(inviter=inviter) for _ in range(3)]
    for relation in relations:
        settle_by_notify(session, PaymentFactory(user=relation.invitee), limited)
    reasons = []
    for relation in relations:
        session.refresh(relation)
        reasons.append(relation.unrewarded_reason)
    assert reasons == [None, None, "monthly_limit"]  # the reward of 31 days ago no longer counts
    assert balance_of(session, inviter) == Decimal("15.00")  # 5.00 long ago, 2 x 5.00 now
    assert balance_of(session, relations[2].invitee_id) == Decimal("50.00")  # a reward is a pair: none for it
    # the SaaS may still decide to pay it (SPEC 6): the API pays an unrewarded relation, and the reason goes
    outcome = reward_invite(session, invitee_id=relations[2].invitee_id, ctx=SYSTEM.using(limited))
    assert outcome.rewarded
    session.refresh(relations[2])
    assert (relations[2].rewarded_at is not None, relations[2].unrewarded_reason) == (True, None)
    assert list(find_breaches(session)) == []


def test_verify_finds_an_invitation_that_says_it_earned_nothing_before_any_top_up(session):
    relation = InviteFactory()
    session.execute(
        update(InviteRelation).where(InviteRelation.id == relation.id).values(unrewarded_reason="monthly_limit")
    )
    [breach] = find_breaches(session)
    assert breach.subject == f"invite {relation.id}" and "no succeeded top-up" in breach.detail
