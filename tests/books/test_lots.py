"""Credit lots (books.lots, SPEC 20): every credit a lot of its kind, every debit drawn in one order
(the soonest expiry first, then plan, granted, paid, then the oldest), gifts that expire from their
instant but for what active holds need, refunds from the order's own paid money only."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.db import atomic
from ledger.errors import InsufficientBalance, RefundRefused
from ledger.models import AuditLog, CreditLot, Event, LedgerEntry, LedgerKind, LotDraw, User
from ledger.services.books.accounts import adjust_balance, credit, funds, post
from ledger.services.books.batch_charges import charge_batch
from ledger.services.books.charges import charge_usage
from ledger.services.books.expiry import expire_credits
from ledger.services.books.holds import capture_hold, place_hold, release_hold
from ledger.services.books.invariants import find_breaches
from ledger.services.books.lots import kinds_of
from ledger.services.context import INTERNAL, SYSTEM, XORPAY
from ledger.services.payments.refunds import preview_refund_order, refund_order
from ledger.services.payments.webhook import handle_notify
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import ADMIN, balance_of, settle_by_notify, signed_notify

T0 = datetime(2027, 1, 10, 4, 0, tzinfo=UTC)  # the tests' clock starts here
DAY = timedelta(days=1)
HALF_DAY = timedelta(hours=12)


def gift(session, user, amount, expires_at=None, at=T0):
    """An admin's credit (granted money), made at `at`, expiring at `expires_at` (None: never)."""
    return adjust_balance(
        session, user_id=user.id, amount=Decimal(amount), memo="gift", ctx=SYSTEM.at(at), expires_at=expires_at
    )


def plan_money(session, user, amount, expires_at, at=T0):
    """A plan period's allowance (plan money), as the plans of SPEC 21 will grant it."""
    with atomic(session):
        return credit(
            session,
            user_id=user.id,
            amount=Decimal(amount),
            kind=LedgerKind.PLAN,
            ctx=SYSTEM.at(at),
            action="plan.granted",
            expires_at=expires_at,
        )


def lot_of(session, entry) -> CreditLot:
    return session.scalars(
        select(CreditLot).where(CreditLot.ledger_entry_id == entry.id).execution_options(populate_existing=True)
    ).one()


def remaining(session, *entries) -> list[Decimal]:
    return [lot_of(session, e).remaining for e in entries]


def deduct(session, user, amount, request_id, at=T0):
    return charge_usage(session, user_id=user.id, amount=amount, model="m", request_id=request_id, ctx=INTERNAL.at(at))


def drawn(paid="0", granted="0", plan="0") -> dict[str, Decimal]:
    return {"paid": Decimal(paid), "granted": Decimal(granted), "plan": Decimal(plan)}


@pytest.fixture
def topped_up(session, settings):
    """A person who paid a ¥100.00 order (paid money)."""
    order = PaymentFactory(user=UserFactory(), amount=Decimal("100.00"))
    settle_by_notify(session, order, settings)
    return order


def test_every_credit_is_a_lot_of_its_kind(session, topped_up):
    user = session.get(User, topped_up.user_id)
    paid_entry = session.scalars(select(LedgerEntry).where(LedgerEntry.payment_transaction_id == topped_up.id)).one()
    given = gift(session, user, "5.00", expires_at=T0 + 30 * DAY)
    lots = [lot_of(session, paid_entry), lot_of(session, given)]
    assert [(lot.category, lot.amount, lot.remaining, lot.expires_at) for lot in lots] == [
        ("paid", Decimal("100.0000"), Decimal("100.0000"), None),
        ("granted", Decimal("5.0000"), Decimal("5.0000"), T0 + 30 * DAY),
    ]
    assert list(find_breaches(session)) == []


def test_gifts_go_before_paid_money_and_the_soonest_expiry_before_all(session, topped_up):
    user = session.get(User, topped_up.user_id)
    paid_entry = session.scalars(select(LedgerEntry).where(LedgerEntry.payment_transaction_id == topped_up.id)).one()
    never = gift(session, user, "3.00")
    later = gift(session, user, "4.00", expires_at=T0 + 20 * DAY)
    sooner = gift(session, user, "2.00", expires_at=T0 + 10 * DAY)

    first = deduct(session, user, "1.50", "a")
    assert first.usage.drawn == drawn(granted="1.50")
    assert remaining(session, sooner, later, never, paid_entry) == [
        Decimal("0.5000"), Decimal("4.0000"), Decimal("3.0000"), Decimal("100.0000")
    ]  # fmt: skip
    # one charge spans four lots: the rest of the soonest, the later one, the never-expiring gift, then paid
    spanning = deduct(session, user, "10.00", "b")
    assert spanning.usage.drawn == drawn(paid="2.50", granted="7.50")
    assert remaining(session, sooner, later, never, paid_entry) == [
        Decimal("0"), Decimal("0"), Decimal("0"), Decimal("97.5000")
    ]  # fmt: skip
    draws = session.execute(
        select(LotDraw.lot_id, LotDraw.amount).where(LotDraw.usage_log_id == spanning.usage.id).order_by(LotDraw.id)
    ).all()
    assert [amount for _, amount in draws] == [Decimal("0.5000"), Decimal("4.0000"), Decimal("3.0000"),
                                               Decimal("2.5000")]  # fmt: skip
    assert list(find_breaches(session)) == []


def test_plan_money_goes_first_among_equal_expiries_then_granted(session):
    user = UserFactory()
    month_end = T0 + 20 * DAY
    granted = gift(session, user, "2.00", expires_at=month_end, at=T0 - DAY)  # older, but granted
    plan = plan_money(session, user, "3.00", expires_at=month_end)
    assert deduct(session, user, "4.00", "a").usage.drawn == drawn(plan="3.00", granted="1.00")
    assert remaining(session, plan, granted) == [Decimal("0"), Decimal("1.0000")]


def test_among_equal_kind_and_expiry_the_oldest_goes_first(session):
    user = UserFactory()
    old = gift(session, user, "1.00", at=T0 - 2 * DAY)
    new = gift(session, user, "1.00", at=T0 - DAY)
    deduct(session, user, "1.20", "a")
    assert remaining(session, old, new) == [Decimal("0"), Decimal("0.8000")]


def test_a_replay_answers_what_the_charge_first_drew(session):
    user = UserFactory()
    gift(session, user, "1.00", expires_at=T0 + DAY)
    gift(session, user, "5.00")
    first = deduct(session, user, "2.00", "same")
    again = deduct(session, user, "2.00", "same")
    assert again.replayed and again.usage.drawn == first.usage.drawn == drawn(granted="2.00")


def test_a_batch_draws_each_item_in_the_same_order(session, topped_up):
    user = session.get(User, topped_up.user_id)
    soon = gift(session, user, "1.00", expires_at=T0 + DAY)
    items = [
        {"user_id": str(user.id), "amount": amount, "model": "m", "request_id": f"b{n}"}
        for n, amount in enumerate(["0.60", "0.60", "1.00"])
    ]
    results = charge_batch(session, charges=items, ctx=INTERNAL.at(T0))
    assert [r.usage.drawn for r in results] == [
        drawn(granted="0.60"),
        drawn(granted="0.40", paid="0.20"),
        drawn(paid="1.00"),
    ]
    assert remaining(session, soon) == [Decimal("0")]
    assert balance_of(session, user) == Decimal("98.8000")
    assert list(find_breaches(session)) == []


def test_an_admin_debit_draws_in_the_spending_order(session, topped_up):
    user = session.get(User, topped_up.user_id)
    soon = gift(session, user, "1.00", expires_at=T0 + DAY)
    with atomic(session):
        debit = post(
            session, user_id=user.id, amount=Decimal("-3.00"), kind=LedgerKind.ADJUSTMENT, ctx=ADMIN.at(T0),
            action="balance.adjusted",
        )  # fmt: skip
    amounts = session.scalars(select(LotDraw.amount).where(LotDraw.ledger_entry_id == debit.id).order_by(LotDraw.id))
    assert list(amounts) == [Decimal("1.0000"), Decimal("2.0000")]
    assert remaining(session, soon) == [Decimal("0")]
    assert list(find_breaches(session)) == []


# --- expiry ------------------------------------------------------------------------------------------


def test_a_gift_counts_no_more_from_its_expiry_and_the_next_operation_writes_it(session, topped_up):
    user = session.get(User, topped_up.user_id)
    expiry = T0 + DAY
    gift(session, user, "5.00", expires_at=expiry)
    before, after = funds(session, user.id, expiry - timedelta(microseconds=1)), funds(session, user.id, expiry)
    assert (before.balance, after.balance) == (Decimal("105.0000"), Decimal("100.0000"))
    assert kinds_of(session, user.id, expiry).granted == Decimal("0")

    charge = deduct(session, user, "1.00", "after", at=expiry)
    assert charge.usage.drawn == drawn(paid="1.00") and charge.balance == Decimal("99.0000")
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "expiry")).one()
    assert (entry.amount, entry.balance_after) == (Decimal("-5.0000"), Decimal("100.0000"))
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "credit.expired")).one()
    assert audit.details["amount"] == "5.00"
    event = session.scalars(select(Event).where(Event.type == "credit.expired")).one()
    assert (event.data["amount"], event.data["category"], event.data["balance"]) == ("5.00", "granted", "100.00")
    assert list(find_breaches(session)) == []


def test_expiry_keeps_what_active_holds_need_for_their_captures(session):
    user = UserFactory()
    expiry = T0 + HALF_DAY
    gift(session, user, "5.00", expires_at=expiry)
    gift(session, user, "1.00")  # never expires
    hold = place_hold(
        session, user_id=user.id, amount="4.00", model="video", request_id="job", ttl_seconds=86400,
        ctx=INTERNAL.at(T0),
    )  # fmt: skip
    # at the expiry: balance 6, held 4: the expiry removes 2 and keeps 3 of the gift for the hold
    shown = funds(session, user.id, expiry)
    assert (shown.balance, shown.available) == (Decimal("4.0000"), Decimal("0.0000"))
    with pytest.raises(InsufficientBalance):  # refused (and its expiry with it: rolled back)
        deduct(session, user, "0.01", "x", at=expiry + timedelta(seconds=1))
    answer = capture_hold(session, hold_id=hold.hold.id, amount="2.50", ctx=INTERNAL.at(expiry + timedelta(hours=1)))
    assert answer.hold.captured_amount == Decimal("2.50")
    # the capture spent 2.50 of the kept part; the other 0.50 expired once the hold settled
    expired = session.scalars(select(LedgerEntry.amount).where(LedgerEntry.kind == "expiry").order_by(LedgerEntry.id))
    assert list(expired) == [Decimal("-2.0000"), Decimal("-0.5000")]
    assert balance_of(session, user) == Decimal("1.0000")
    assert list(find_breaches(session)) == []


def test_a_release_lets_the_kept_part_expire(session):
    user = UserFactory()
    expiry = T0 + HALF_DAY
    gift(session, user, "3.00", expires_at=expiry)
    hold = place_hold(
        session, user_id=user.id, amount="3.00", model="video", request_id="job", ttl_seconds=86400,
        ctx=INTERNAL.at(T0),
    )  # fmt: skip
    release_hold(session, hold_id=hold.hold.id, ctx=INTERNAL.at(expiry + timedelta(hours=1)))
    assert balance_of(session, user) == Decimal("0.0000")
    assert session.scalar(select(func.count()).where(LedgerEntry.kind == "expiry")) == 1
    assert list(find_breaches(session)) == []


def test_a_hold_that_expires_after_a_gift_does_not_take_what_the_gift_kept_for_another(session, settings):
    """Found by the state machine: a gift of 0.01 expires at T0 + 12 h under two holds placed before
    it (1.01 for a day, 1.00 until T0 + 13 h) that need all of the balance, so it is all kept
    (expiry removes at most balance - held = 0). At T0 + 13 h the second hold expires, but the first
    is still active and needs more than 0.01: what was kept stays for it, whether or not anything
    wrote the gift's expiry before the second hold's, and its capture draws it first (SPEC 20)."""

    def a_person_with_two_holds(written_between: bool):
        order = PaymentFactory(user=UserFactory(), amount=Decimal("1.00"))
        assert handle_notify(session, XORPAY.using(settings).at(T0), signed_notify(order))
        user = session.get(User, order.user_id)
        gift(session, user, "0.01", expires_at=T0 + HALF_DAY)
        job = place_hold(
            session, user_id=user.id, amount="1.01", model="m", request_id="day", ttl_seconds=86400,
            ctx=INTERNAL.at(T0),
        )  # fmt: skip
        second = PaymentFactory(user=user, amount=Decimal("1.00"))
        assert handle_notify(session, XORPAY.using(settings).at(T0), signed_notify(second))
        place_hold(
            session, user_id=user.id, amount="1.00", model="m", request_id="short", ttl_seconds=13 * 3600,
            ctx=INTERNAL.at(T0),
        )  # fmt: skip
        shown = funds(session, user.id, T0 + HALF_DAY)
        assert (shown.balance, shown.held) == (Decimal("2.0100"), Decimal("2.0100"))  # all kept
        if written_between:  # the expiry job ran between the gift's expiry and the second hold's
            expire_credits(session, SYSTEM.at(T0 + HALF_DAY))
        return user, job

    for written_between in (False, True):
        user, job = a_person_with_two_holds(written_between)
        later = T0 + HALF_DAY + timedelta(hours=1)  # the second hold's expiry
        shown, kinds = funds(session, user.id, later), kinds_of(session, user.id, later)
        read = (shown.balance, shown.held, kinds.granted)
        assert read == (Decimal("2.0100"), Decimal("1.0100"), Decimal("0.0100")), f"written between: {written_between}"
        expire_credits(session, SYSTEM.at(later))  # writes the holds' and the gift's expiries
        assert balance_of(session, user) == Decimal("2.0100"), f"written between: {written_between}"
        answer = capture_hold(session, hold_id=job.hold.id, amount="1.01", ctx=INTERNAL.at(later + timedelta(hours=1)))
        spent = session.execute(
            select(CreditLot.category, func.sum(LotDraw.amount))
            .join(LotDraw, LotDraw.lot_id == CreditLot.id)
            .where(LotDraw.usage_log_id == answer.hold.usage_log_id)
            .group_by(CreditLot.category)
        ).all()
        assert {c.value: a for c, a in spent} == {"granted": Decimal("0.0100"), "paid": Decimal("1.0000")}
        assert balance_of(session, user) == Decimal("1.0000")
        assert list(find_breaches(session)) == []


def test_lots_expire_in_time_order_with_the_holds_between_them(session):
    """A gift of 5.00 expires at T0 + 12 h under two holds (5.00 until T0 + 24 h, 3.00 until T0 + 35 h):
    all of it is kept. At T0 + 24 h the first hold expires: the gift keeps the 3.00 the second
    needs. At T0 + 34 h plan money of 3.00 expires: balance 6.00 - held 3.00 leaves nothing to
    keep of it. The reads before anything writes, and the writes however late, say so by kind."""
    user = UserFactory()
    given = gift(session, user, "5.00", expires_at=T0 + HALF_DAY)
    plan = plan_money(session, user, "3.00", expires_at=T0 + timedelta(hours=34))
    place_hold(
        session, user_id=user.id, amount="5.00", model="m", request_id="first", ttl_seconds=86400,
        ctx=INTERNAL.at(T0),
    )  # fmt: skip
    place_hold(
        session, user_id=user.id, amount="3.00", model="m", request_id="second", ttl_seconds=86400,
        ctx=INTERNAL.at(T0 + timedelta(hours=11)),
    )  # fmt: skip
    later = T0 + timedelta(hours=34)
    shown, kinds = funds(session, user.id, later), kinds_of(session, user.id, later)
    assert (shown.balance, shown.held, kinds.granted, kinds.plan) == (Decimal("3.00"), Decimal("3.00"), 3, 0)
    expire_credits(session, SYSTEM.at(later))
    assert remaining(session, given, plan) == [Decimal("3.0000"), Decimal("0.0000")]
    kinds = kinds_of(session, user.id, later)
    assert (balance_of(session, user), kinds.granted, kinds.plan) == (Decimal("3.0000"), 3, 0)
    assert list(find_breaches(session)) == []


# --- refunds -----------------------------------------------------------------------------------------


def test_a_refund_pays_back_only_the_orders_own_paid_money(session, xorpay, topped_up):
    user = session.get(User, topped_up.user_id)
    gift(session, user, "50.00")  # a code's ¥50, say
    deduct(session, user, "60.00", "spend")  # 50 of the gift, then 10 of the order's money
    plan = preview_refund_order(session, ADMIN.at(T0), topped_up.id, "90.00")
    assert plan.refundable == Decimal("90.0000")
    with pytest.raises(RefundRefused) as refused:
        refund_order(session, xorpay.client, ADMIN, topped_up.id, "95.00", reason="asked")
    assert "¥90.00" in str(refused.value)
    xorpay.refund_answers("ok")
    refund = refund_order(session, xorpay.client, ADMIN, topped_up.id, "90.00", reason="asked")
    assert refund.status == "succeeded" and balance_of(session, user) == Decimal("0.0000")
    assert list(find_breaches(session)) == []


def test_a_pending_refund_sets_its_money_aside_in_its_lot(session, xorpay, settings):
    user = UserFactory()
    first, second = (PaymentFactory(user=user, amount=Decimal(a)) for a in ("20.00", "10.00"))
    settle_by_notify(session, first, settings)
    settle_by_notify(session, second, settings)
    xorpay.refund_times_out()
    refund = refund_order(session, xorpay.client, ADMIN, first.id, "20.00", reason="asked")
    assert refund.status == "pending"
    # the older order's lot goes first, but its money is set aside: the charge draws the other lot
    charge = deduct(session, user, "10.00", "spend")
    assert charge.usage.drawn == drawn(paid="10.00")
    assert list(find_breaches(session)) == []


def test_gifts_without_their_own_expiry_expire_after_grant_expiry_days(session, settings):
    from dataclasses import replace

    from ledger.config import load_settings

    user = UserFactory()
    site = SYSTEM.using(replace(settings, GRANT_EXPIRY_DAYS=30)).at(T0)
    default = adjust_balance(session, user_id=user.id, amount=Decimal("1.00"), memo="gift", ctx=site)
    own = adjust_balance(
        session, user_id=user.id, amount=Decimal("1.00"), memo="gift", ctx=site, expires_at=T0 + 2 * DAY
    )
    assert [lot_of(session, e).expires_at for e in (default, own)] == [T0 + 30 * DAY, T0 + 2 * DAY]
    assert load_settings({"GRANT_EXPIRY_DAYS": ""}, env_file=None).GRANT_EXPIRY_DAYS == 0  # empty: never
    assert load_settings({"GRANT_EXPIRY_DAYS": "30"}, env_file=None).GRANT_EXPIRY_DAYS == 30
