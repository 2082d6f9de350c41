"""Invite rewards under contention: parallel reward calls and a reward racing the first top-up."""

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.models import BillingAccount, LedgerEntry
from ledger.services.books.invariants import find_breaches
from tests.helpers import invited_pair, pending_order, run_together, signed_notify

pytestmark = pytest.mark.committed


def test_sixteen_parallel_reward_calls_pay_once(committed, app, internal_headers):
    inviter, invitee, _ = invited_pair(committed)

    def reward(_i):
        response = app.test_client().post(
            "/api/invites/reward", headers=internal_headers, json={"invitee_id": str(invitee.id)}
        )
        return response.status_code, response.get_json()["rewarded"]

    results = run_together(16, reward)

    assert sorted(results) == [(200, False)] * 15 + [(200, True)]
    with committed.session() as session:
        assert session.get(BillingAccount, inviter.id).balance == Decimal("5.0000")
        assert session.get(BillingAccount, invitee.id).balance == Decimal("2.0000")
        assert session.scalar(select(func.count()).where(LedgerEntry.kind == "invite_reward")) == 2
        assert list(find_breaches(session)) == []


def test_reward_racing_the_first_top_up_pays_once(committed, app, settings, internal_headers):
    inviter, invitee, _ = invited_pair(committed)
    order = pending_order(committed, invitee, amount="30.00")
    fields = signed_notify(order, secret=settings.XORPAY_APP_SECRET)

    def race(i):
        client = app.test_client()
        if i % 2:
            return client.post("/api/payments/webhook", data=fields).status_code
        return client.post(
            "/api/invites/reward", headers=internal_headers, json={"invitee_id": str(invitee.id)}
        ).status_code

    assert run_together(10, race) == [200] * 10
    with committed.session() as session:
        assert session.get(BillingAccount, invitee.id).balance == Decimal("32.0000")
        assert session.get(BillingAccount, inviter.id).balance == Decimal("5.0000")
        assert session.scalar(select(func.count()).where(LedgerEntry.kind == "invite_reward")) == 2
        assert session.scalar(select(func.count()).where(LedgerEntry.kind == "topup")) == 1
        assert list(find_breaches(session)) == []


def test_twenty_invitees_topping_up_at_once_reward_the_inviter_at_most_max_per_month(
    committed, app, settings, monkeypatch
):
    """The inviter's reward lock makes the monthly count exact: 20 first top-ups at the same instant,
    a limit of 3: exactly 3 pairs rewarded, 17 relations (without the lock: 4 to 20 pairs) that say why not."""
    from dataclasses import replace

    from ledger.models import InviteRelation
    from ledger.services.context import SYSTEM
    from ledger.services.people.sign_in import register_user

    monkeypatch.setitem(app.config, "LEDGER", replace(settings, INVITE_REWARD_MAX_PER_MONTH=3))
    inviter, _, _ = invited_pair(committed)
    invitees = []
    with committed.session() as session:
        for n in range(20):
            invitees.append(
                register_user(
                    session,
                    email=f"farm{n}@example.com",
                    password="p" * 10,
                    ctx=SYSTEM,
                    invite_code=inviter.invite_code,
                )
            )
    forms = [
        signed_notify(pending_order(committed, person, amount="20.00"), secret=settings.XORPAY_APP_SECRET)
        for person in invitees
    ]

    statuses = run_together(20, lambda i: app.test_client().post("/api/payments/webhook", data=forms[i]).status_code)

    assert statuses == [200] * 20
    with committed.session() as session:
        rewarded = session.scalar(select(func.count()).where(InviteRelation.rewarded_at.is_not(None)))
        limited = session.scalar(select(func.count()).where(InviteRelation.unrewarded_reason == "monthly_limit"))
        assert (rewarded, limited) == (3, 17)  # the first pair of invited_pair never topped up
        assert session.get(BillingAccount, inviter.id).balance == Decimal("15.0000")
        assert session.scalar(select(func.sum(BillingAccount.balance))) == Decimal("421.0000")  # 200 + 3 x (5 + 2)
        assert list(find_breaches(session)) == []


def test_a_small_and_a_large_first_top_up_settling_at_once_never_both_decide(committed, app, settings):
    """SPEC 19: a later, larger top-up never pays what a too-small first one missed, even when the
    two settle at the same instant (the earlier top-ups are counted under the relation's lock)."""
    from ledger.models import AuditLog
    from ledger.services.context import SYSTEM
    from ledger.services.people.sign_in import register_user

    inviter, _, _ = invited_pair(committed)
    forms = []
    with committed.session() as session:
        invitees = [
            register_user(
                session, email=f"pair{n}@example.com", password="p" * 10, ctx=SYSTEM, invite_code=inviter.invite_code
            )
            for n in range(8)
        ]
    for person in invitees:
        for amount in ("1.00", "100.00"):
            forms.append(
                signed_notify(pending_order(committed, person, amount=amount), secret=settings.XORPAY_APP_SECRET)
            )

    assert (
        run_together(16, lambda i: app.test_client().post("/api/payments/webhook", data=forms[i]).status_code)
        == [200] * 16
    )
    with committed.session() as session:
        decided = select(AuditLog.details["relation_id"].astext, AuditLog.action).where(
            AuditLog.action.in_(["invite.rewarded", "invite.not_rewarded"])
        )
        by_relation: dict[str, set[str]] = {}
        for relation_id, action in session.execute(decided):
            by_relation.setdefault(relation_id, set()).add(action)
        assert len(by_relation) == 8
        assert all(len(actions) == 1 for actions in by_relation.values()), by_relation  # one decision each
        assert list(find_breaches(session)) == []
