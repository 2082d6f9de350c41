"""Refunds through XorPay (SPEC 15): committed pending and held before the call; ok debits, a refusal
releases, an unknown outcome stays pending and blocks the order; never beyond refundable or available."""

from decimal import Decimal

import pytest
from sqlalchemy import select, text

from ledger.errors import InvalidRequest, NotFound, RefundRefused
from ledger.models import AuditLog, BillingAccount, LedgerEntry, Refund
from ledger.services.books.invariants import find_breaches, find_warnings
from ledger.services.payments.refunds import MAX_PER_ORDER, refund_order, settle_refund
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import ADMIN, settle_by_notify


@pytest.fixture
def paid(session, settings):
    """A person who topped up ¥50.00 (a succeeded order) and has ¥50.00."""
    order = PaymentFactory(user=UserFactory())
    settle_by_notify(session, order, settings)
    return order


def figures(session, order) -> tuple[Decimal, Decimal]:
    account = session.get(BillingAccount, order.user_id, populate_existing=True)
    return account.balance, account.held


def test_a_refund_xorpay_accepts_debits_the_balance_with_a_refund_entry(session, xorpay, paid):
    xorpay.refund_answers("ok")
    refund = refund_order(session, xorpay.client, ADMIN, paid.id, "20.00", reason="asked by the customer")
    assert (refund.status, refund.amount) == ("succeeded", Decimal("20.00"))
    assert figures(session, paid) == (Decimal("30.0000"), Decimal("0.0000"))
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.refund_id == refund.id)).one()
    assert (entry.kind, entry.amount) == ("refund", Decimal("-20.0000"))
    assert xorpay.sent_forms()[-1]["price"] == "20.00"
    actions = session.scalars(select(AuditLog.action).where(AuditLog.action.like("refund.%")).order_by(AuditLog.id))
    assert list(actions) == ["refund.requested", "refund.succeeded"]
    assert list(find_breaches(session)) == []


def test_a_refund_xorpay_refuses_releases_the_amount(session, xorpay, paid):
    xorpay.refund_answers("order_error")
    refund = refund_order(session, xorpay.client, ADMIN, paid.id, "20.00", reason="x")
    assert refund.status == "failed" and refund.gateway_answer["status"] == "order_error"
    assert figures(session, paid) == (Decimal("50.0000"), Decimal("0.0000"))
    assert list(find_breaches(session)) == []


def test_an_unknown_outcome_stays_pending_holds_the_money_and_blocks_the_order(session, xorpay, paid):
    xorpay.refund_times_out()
    refund = refund_order(session, xorpay.client, ADMIN, paid.id, "20.00", reason="x")
    assert refund.status == "pending"
    assert figures(session, paid) == (Decimal("50.0000"), Decimal("20.0000"))  # it cannot be spent meanwhile
    with pytest.raises(RefundRefused, match="pending"):
        refund_order(session, xorpay.client, ADMIN, paid.id, "1.00", reason="again")
    assert list(find_breaches(session)) == []
    settle_refund(session, ADMIN, refund.id, succeeded=True, reason="XorPay's dashboard shows it refunded")
    assert figures(session, paid) == (Decimal("30.0000"), Decimal("0.0000"))
    with pytest.raises(RefundRefused):
        settle_refund(session, ADMIN, refund.id, succeeded=False, reason="twice")
    assert list(find_breaches(session)) == []


def test_verify_warns_of_a_refund_whose_outcome_stays_unknown(session, xorpay, paid):
    xorpay.refund_times_out()
    refund = refund_order(session, xorpay.client, ADMIN, paid.id, "20.00", reason="x")
    assert list(find_warnings(session)) == []  # just asked: not yet a concern
    backdate = text("UPDATE refunds SET created_at = now() - interval '11 minutes' WHERE id = :id")
    session.execute(backdate, {"id": refund.id})
    assert [w.subject for w in find_warnings(session)] == [f"refund {refund.id}"]
    settle_refund(session, ADMIN, refund.id, succeeded=False, reason="XorPay's dashboard shows nothing")
    assert list(find_warnings(session)) == []


@pytest.mark.parametrize(
    ("amount", "error"),
    [("50.01", RefundRefused), ("0", InvalidRequest), ("1.005", InvalidRequest), (" 1.00", InvalidRequest)],
)
def test_a_refund_beyond_the_order_or_malformed_is_refused_and_writes_nothing(session, xorpay, paid, amount, error):
    with pytest.raises(error):
        refund_order(session, xorpay.client, ADMIN, paid.id, amount, reason="x")
    assert session.scalars(select(Refund)).all() == []


def test_refunded_amounts_add_up_to_the_order_at_most(session, xorpay, paid):
    xorpay.refund_answers("ok")
    refund_order(session, xorpay.client, ADMIN, paid.id, "30.00", reason="x")
    with pytest.raises(RefundRefused, match=r"¥20\.00"):
        refund_order(session, xorpay.client, ADMIN, paid.id, "20.01", reason="x")
    refund_order(session, xorpay.client, ADMIN, paid.id, "20.00", reason="x")
    assert figures(session, paid) == (Decimal("0.0000"), Decimal("0.0000"))
    assert list(find_breaches(session)) == []


def test_a_refund_never_takes_more_than_the_person_has_available(session, xorpay, paid):
    from ledger.services.books.charges import charge_usage
    from ledger.services.context import INTERNAL

    charge_usage(session, user_id=paid.user_id, amount="45.00", model="m", request_id="spent", ctx=INTERNAL)
    with pytest.raises(RefundRefused, match=r"¥5\.00"):
        refund_order(session, xorpay.client, ADMIN, paid.id, "5.01", reason="x")


def test_the_51st_refund_of_an_order_is_refused(session, xorpay, paid):
    xorpay.refund_answers("price_error")  # refused ones count too: XorPay counts the calls
    for _ in range(MAX_PER_ORDER):
        assert refund_order(session, xorpay.client, ADMIN, paid.id, "0.01", reason="x").status == "failed"
    with pytest.raises(RefundRefused, match="50"):
        refund_order(session, xorpay.client, ADMIN, paid.id, "0.01", reason="x")


def test_only_a_paid_order_can_be_refunded(session, xorpay):
    with pytest.raises(RefundRefused):
        refund_order(session, xorpay.client, ADMIN, PaymentFactory().id, "1.00", reason="x")
    with pytest.raises(NotFound):
        refund_order(session, xorpay.client, ADMIN, "not-an-id", "1.00", reason="x")
