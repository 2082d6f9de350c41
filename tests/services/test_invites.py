"""The invites service: rewards paid once, with the first top-up or on request, and the database backing it."""

from dataclasses import replace
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ledger.db import atomic
from ledger.models import AuditLog, BillingAccount, User
from ledger.services.audit import SYSTEM
from ledger.services.billing import credit
from ledger.services.integrity import find_breaches
from ledger.services.invites import reward_invite
from tests.factories import InviteFactory, PaymentFactory
from tests.helpers import reward_entries, settle_by_notify


def test_the_database_refuses_a_second_reward_entry(session, settings):
    relation = InviteFactory()
    reward_invite(session, invitee_id=relation.invitee_id, settings=settings, origin=SYSTEM)
    with pytest.raises(IntegrityError, match="uq_ledger_entries_invite_relation_id_user_id"), atomic(session):
        credit(
            session,
            user_id=relation.inviter_id,
            amount=Decimal("5.00"),
            kind="invite_reward",
            origin=SYSTEM,
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
        settings=replace(settings, INVITE_REWARD_INVITEE=Decimal("0")),
        origin=SYSTEM,
    )
    assert outcome.rewarded
    assert reward_entries(session) == [(str(relation.inviter_id), Decimal("5.00"))]
    assert list(find_breaches(session)) == []
