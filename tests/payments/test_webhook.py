"""The XorPay notify (payments.webhook): a signed notify credits its order once; refused notifies are
counted by source and the counts forgotten after 30 days."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from ledger.errors import InvalidNotify
from ledger.models import NotifyRefusal
from ledger.services.context import XORPAY
from ledger.services.payments.webhook import handle_notify
from tests.factories import PaymentFactory
from tests.helpers import balance_of, signed_notify


def test_counts_of_refused_notifies_are_forgotten_after_30_days(session):
    from ledger.services.payments.webhook import forget_old_refusals

    old, recent = (
        NotifyRefusal(
            minute=datetime.now(UTC) - timedelta(days=days),
            source=f"10.0.0.{days}",
            reason="bad_sign",
            count=1,
            last_at=datetime.now(UTC),
        )
        for days in (31, 29)
    )
    session.add_all([old, recent])
    session.flush()
    assert forget_old_refusals(session) == 1
    assert session.scalars(select(NotifyRefusal.source)).all() == ["10.0.0.29"]


def test_a_signed_notify_credits_the_stored_amount_once_and_a_repeat_changes_nothing(session, settings):
    order = PaymentFactory()
    assert handle_notify(session, XORPAY.using(settings), signed_notify(order)) is True
    assert handle_notify(session, XORPAY.using(settings), signed_notify(order)) is False
    session.refresh(order)
    assert (order.status, balance_of(session, order.user_id)) == ("succeeded", Decimal("50.00"))


def test_a_forged_notify_is_refused_credits_nothing_and_is_counted_by_its_source(session, settings):
    order = PaymentFactory()
    forged = signed_notify(order, secret="not-the-secret")
    with pytest.raises(InvalidNotify):
        handle_notify(session, XORPAY.using(settings), forged, source="2001:db8::7")
    session.refresh(order)
    assert (order.status, balance_of(session, order.user_id)) == ("pending", Decimal("0.00"))
    [counted] = session.scalars(select(NotifyRefusal)).all()
    assert (counted.source, counted.reason, counted.count) == ("2001:db8::/64", "bad_sign", 1)


def test_a_notify_of_a_price_other_than_the_stored_amount_is_refused(session, settings):
    order = PaymentFactory()
    with pytest.raises(InvalidNotify):
        handle_notify(session, XORPAY.using(settings), signed_notify(order, pay_price="50.01"))
    assert balance_of(session, order.user_id) == Decimal("0.00")
