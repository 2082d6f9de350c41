"""Invite rewards under contention: parallel reward calls and a reward racing the first top-up."""

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.models import BillingAccount, LedgerEntry
from ledger.services.integrity import find_breaches
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
