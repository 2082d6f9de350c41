"""Credit lots under contention (SPEC 20): real threads, a connection each, committed rows. Charges
spread over several lots leave each lot exact; expiry racing charges, holds and captures never
takes what a hold needs, and nothing is drawn from a lot after its expiry."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.db import atomic
from ledger.errors import InsufficientBalance
from ledger.models import BillingAccount, CreditLot, LedgerEntry, LedgerKind
from ledger.services.books.accounts import adjust_balance, credit
from ledger.services.books.charges import charge_usage
from ledger.services.books.expiry import expire_credits
from ledger.services.books.holds import capture_hold, place_hold
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL, SYSTEM
from tests.helpers import funded_user, run_together

pytestmark = pytest.mark.committed
T0 = datetime.now(UTC).replace(microsecond=0)  # the clock every operation is given, moved by the test
EXPIRY = T0 + timedelta(hours=1)


def gift(database, user, amount, expires_at=None):
    with database.session() as session:
        return adjust_balance(
            session, user_id=user.id, amount=Decimal(amount), memo="gift", ctx=SYSTEM.at(T0), expires_at=expires_at
        ).id


def lots_of(database, user) -> dict[int, Decimal]:
    """Each lot's remaining, by the id of the ledger entry that credited it."""
    with database.session() as session:
        rows = session.execute(
            select(CreditLot.ledger_entry_id, CreditLot.remaining).where(CreditLot.user_id == user.id)
        )
        return dict(rows.all())


def race_at_the_expiry(committed, user, *, expiry_jobs: int, capture: str, threads: int) -> list:
    """A hold of 4.00 placed at T0; a second after EXPIRY, at once: `expiry_jobs` runs of the expiry
    job, then the hold's capture of `capture`, then deducts of 0.50 in the other threads. Their
    answers (or refusals), in that order."""
    with committed.session() as session:
        hold = place_hold(
            session, user_id=user.id, amount="4.00", model="video", request_id="job", ttl_seconds=86400,
            ctx=INTERNAL.at(T0),
        ).hold.id  # fmt: skip
    after = EXPIRY + timedelta(seconds=1)

    def work(i):
        with committed.session() as session:
            if i < expiry_jobs:
                return expire_credits(session, SYSTEM.at(after))
            if i == expiry_jobs:
                return capture_hold(session, hold_id=hold, amount=capture, ctx=INTERNAL.at(after))
            return charge_usage(
                session, user_id=user.id, amount="0.50", model="m", request_id=f"r{i}", ctx=INTERNAL.at(after)
            )

    return run_together(threads, work)


def test_fifty_parallel_charges_over_four_lots_leave_each_lot_exact(committed):
    user = funded_user(committed, "2.00")  # a gift that never expires, made first
    never = lots_of(committed, user)
    later = gift(committed, user, "3.00", EXPIRY + timedelta(days=2))
    sooner = gift(committed, user, "4.00", EXPIRY)
    with committed.session() as session, atomic(session):
        plan = credit(
            session, user_id=user.id, amount=Decimal("1.00"), kind=LedgerKind.PLAN, ctx=SYSTEM.at(T0),
            action="plan.granted", expires_at=EXPIRY,
        )  # fmt: skip
        session.flush()
        plan = plan.id

    def charge(i):
        with committed.session() as session:
            return charge_usage(
                session, user_id=user.id, amount="0.30", model="m", request_id=f"r{i}", ctx=INTERNAL.at(T0)
            )

    results = run_together(50, charge)
    charged = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, InsufficientBalance)]
    assert (len(charged), len(refused)) == (33, 17), [r for r in results if isinstance(r, Exception)][:3]
    # 9.90 drawn: the plan's 1.00, the sooner gift's 4.00, the later one's 3.00, 1.90 of the first
    remaining = lots_of(committed, user)
    assert [remaining[plan], remaining[sooner], remaining[later]] == [Decimal(0)] * 3
    assert list(remaining.values()).count(Decimal("0.1000")) == 1 and sum(remaining.values()) == Decimal("0.1000")
    assert [remaining[e] for e in never] == [Decimal("0.1000")]
    assert sum((sum(r.usage.drawn.values()) for r in charged), Decimal(0)) == Decimal("9.9000")
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("0.1000")
        assert list(find_breaches(session)) == []


def test_expiry_racing_charges_and_a_capture_takes_only_what_no_hold_needs(committed):
    user = funded_user(committed, "1.00")  # never expires
    gift(committed, user, "5.00", EXPIRY)
    results = race_at_the_expiry(committed, user, expiry_jobs=4, capture="2.50", threads=20)
    # At the expiry, balance 6.00 and held 4.00: 2.00 of the gift went and 3.00 stayed for the hold,
    # so no deduct could take anything until the capture took 2.50 of the kept part and the rest
    # went: then the 1.00 that never expires was there for two deducts at most.
    assert not isinstance(results[4], Exception), results[4]
    assert results[4].hold.captured_amount == Decimal("2.50")
    charged = [r for r in results[5:] if not isinstance(r, InsufficientBalance)]
    assert len(charged) <= 2 and all(
        r.usage.drawn == {"paid": 0, "granted": Decimal("0.50"), "plan": 0} for r in charged
    )
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("1.00") - Decimal("0.50") * len(charged)
        expired = session.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.kind == "expiry"))
        assert expired == Decimal("-2.5000")
        assert list(find_breaches(session)) == []  # among them: nothing drawn after the expiry but the kept part


def test_expiry_racing_charges_when_the_hold_is_covered_by_money_that_stays(committed):
    user = funded_user(committed, "10.00")  # never expires: covers the hold
    gift(committed, user, "5.00", EXPIRY)
    results = race_at_the_expiry(committed, user, expiry_jobs=3, capture="4.00", threads=24)
    charged = [r for r in results[4:] if not isinstance(r, Exception)]
    assert len(charged) == 12 and all(r.usage.drawn["granted"] == Decimal("0.50") for r in charged)
    assert all(isinstance(r, InsufficientBalance) for r in results[4:] if r not in charged)
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("0.0000")
        assert list(find_breaches(session)) == []


def test_a_charge_while_xorpay_answers_a_refund_is_kept_when_the_refund_settles(committed, xorpay, settings):
    from ledger.models import PaymentTransaction
    from ledger.services.payments.refunds import refund_order, settle_refund
    from tests.helpers import ADMIN, pending_order, settle_by_notify

    user = funded_user(committed, "1.00")
    paid = pending_order(committed, user, amount="100.00")
    with committed.session() as session:  # one session, as a page's or the CLI's: it keeps what it loaded
        order = session.get(PaymentTransaction, paid.id)
        settle_by_notify(session, order, settings)
        xorpay.refund_times_out()
        refund = refund_order(session, xorpay.client, ADMIN, order.id, "30.00", reason="asked")
        assert refund.status == "pending"
        with committed.session() as other:  # a charge meanwhile, through the engine
            charge_usage(other, user_id=user.id, amount="50.00", model="m", request_id="meanwhile", ctx=INTERNAL)
        settle_refund(session, ADMIN, refund.id, succeeded=True, reason="XorPay shows it refunded")
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("21.0000")
        assert list(find_breaches(session)) == []
