"""Plans (套餐, SPEC 21; services.growth.plans): periods in the person's zone, a subscription's periods
each charged once and granted once, renewals and lapses by the job, cancelling, retiring, an edit
from the next period, and the allowance spent before the wallet. The clock is the context's."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from ledger.errors import (
    AccountDisabled,
    AlreadySubscribed,
    InsufficientBalance,
    InvalidRequest,
    PlanNotFound,
    PlanRetired,
    SpendingLimitReached,
    SubscriptionNotFound,
    UserNotFound,
)
from ledger.models import (
    AuditLog,
    CreditLot,
    Event,
    LedgerEntry,
    LimitSetter,
    PlanPeriod,
    Subscription,
    SubscriptionPeriod,
    UsageLog,
)
from ledger.services.books.holds import capture_hold, place_hold
from ledger.services.books.invariants import find_breaches
from ledger.services.books.limits import set_limit
from ledger.services.books.lots import drawn_by_usage, kinds_of
from ledger.services.context import INTERNAL, SYSTEM
from ledger.services.growth import plans
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import ADMIN, balance_of, charge, settle_by_notify

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2027, 1, 31, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)  # 31 January, 10:00 in Shanghai
MINUTE = timedelta(minutes=1)


def local(year, month, day, hour=10, minute=0, tz=SHANGHAI):
    return datetime(year, month, day, hour, minute, tzinfo=tz).astimezone(UTC)


def make_plan(session, code="pro", price="30.00", allowance="50.00", period="month"):
    return plans.create_plan(
        session,
        ADMIN,
        code=code,
        name_zh="专业版",
        name_en="Pro",
        price=price,
        period=period,
        allowance=allowance,
        reason="launch",
    )


def subscribe(session, person, code="pro", at=T0):
    return plans.subscribe(session, INTERNAL.at(at), str(person.id), code)


def events(session, type_):
    return [e.data for e in session.scalars(select(Event).where(Event.type == type_))]


def charges_of(session, person):
    return session.execute(
        select(UsageLog.request_id, UsageLog.amount, UsageLog.model)
        .where(UsageLog.user_id == person.id)
        .order_by(UsageLog.request_id)  # subscription:<id>:1, :2 ... (all made in one test transaction)
    ).all()


def plan_lots(session, person):
    return session.execute(
        select(CreditLot.amount, CreditLot.remaining, CreditLot.expires_at)
        .where(CreditLot.user_id == person.id, CreditLot.category == "plan")
        .order_by(CreditLot.id)
    ).all()


# --- periods ---------------------------------------------------------------------------------------


def test_a_month_from_31_january_ends_on_the_last_day_of_february_at_the_same_local_time():
    assert plans.add_periods(T0, 1, PlanPeriod.MONTH, SHANGHAI) == local(2027, 2, 28)
    assert plans.add_periods(T0, 2, PlanPeriod.MONTH, SHANGHAI) == local(2027, 3, 31)  # counted from the start
    assert plans.add_periods(T0, 3, PlanPeriod.MONTH, SHANGHAI) == local(2027, 4, 30)
    assert plans.add_periods(local(2028, 1, 31), 1, PlanPeriod.MONTH, SHANGHAI) == local(2028, 2, 29)  # leap year
    assert plans.add_periods(local(2027, 12, 15), 1, PlanPeriod.MONTH, SHANGHAI) == local(2028, 1, 15)
    assert plans.add_periods(T0, 1, PlanPeriod.WEEK, SHANGHAI) == local(2027, 2, 7)


def test_a_period_is_counted_in_the_zones_local_time_across_summer_time():
    new_york = ZoneInfo("America/New_York")
    start = local(2027, 3, 10, 9, 0, tz=new_york)  # summer time starts on 14 March
    assert plans.add_periods(start, 1, PlanPeriod.WEEK, new_york) == local(2027, 3, 17, 9, 0, tz=new_york)
    assert plans.add_periods(start, 1, PlanPeriod.WEEK, new_york) - start == timedelta(days=7, hours=-1)
    # 10:00 on 31 January in Shanghai is 21:00 on 30 January in New York: the zone decides the month's day
    assert plans.add_periods(T0, 1, PlanPeriod.MONTH, new_york) == local(2027, 2, 28, 21, 0, tz=new_york)


# --- subscribing ----------------------------------------------------------------------------------


def test_subscribing_charges_the_price_then_grants_the_allowance_until_the_periods_end(session):
    make_plan(session)
    person = UserFactory(balance="100.00")
    done = subscribe(session, person)

    sub = done.subscription
    assert (sub.status, sub.auto_renew, sub.periods) == ("active", True, 1)
    assert (sub.current_period_start, sub.current_period_end) == (T0, local(2027, 2, 28))
    assert (done.money.balance, done.money.available) == (Decimal("120.0000"), Decimal("120.0000"))
    assert charges_of(session, person) == [(f"subscription:{sub.id}:1", Decimal("30.0000"), "plan:pro")]
    assert plan_lots(session, person) == [(Decimal("50.0000"), Decimal("50.0000"), local(2027, 2, 28))]
    entry = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == "plan"))
    period = session.scalar(select(SubscriptionPeriod))
    assert entry.subscription_period_id == period.id and entry.amount == Decimal("50.0000")
    assert (period.n, period.price, period.allowance) == (1, Decimal("30.0000"), Decimal("50.0000"))
    actions = session.scalars(select(AuditLog.action).where(AuditLog.user_id == person.id)).all()
    assert {"usage.charged", "plan.granted", "plan.subscribed"} <= set(actions)
    assert list(find_breaches(session)) == []


def test_the_price_is_paid_from_the_balance_before_the_allowance_it_buys_exists(session, settings):
    make_plan(session, price="30.00", allowance="50.00")
    person = UserFactory()
    settle_by_notify(session, PaymentFactory(user=person, amount=Decimal("30.00")), settings)
    done = subscribe(session, person)  # exactly the price: the allowance does not pay for itself
    usage = session.scalar(select(UsageLog).where(UsageLog.user_id == person.id))
    assert drawn_by_usage(session, [usage.id])[usage.id] == {
        "paid": Decimal("30.0000"),
        "granted": Decimal(0),
        "plan": Decimal(0),
    }
    assert done.money.balance == Decimal("50.0000")


def test_a_second_subscribe_to_a_plan_held_names_it_and_charges_nothing(session):
    make_plan(session)
    person = UserFactory(balance="100.00")
    first = subscribe(session, person).subscription
    with pytest.raises(AlreadySubscribed) as refused:
        subscribe(session, person, at=T0 + MINUTE)
    assert refused.value.details == {"subscription_id": str(first.id)}
    plans.cancel(session, INTERNAL.at(T0 + 2 * MINUTE), str(first.id))
    with pytest.raises(AlreadySubscribed):  # cancelled still holds it until its period ends
        subscribe(session, person, at=T0 + 3 * MINUTE)
    assert len(charges_of(session, person)) == 1 and balance_of(session, person) == Decimal("120.0000")


@pytest.mark.parametrize(
    ("code", "error"),
    [("basic", PlanNotFound), ("NOT A CODE", PlanNotFound), (None, InvalidRequest)],
)
def test_subscribing_to_no_plan_is_refused_and_writes_nothing(session, code, error):
    make_plan(session)
    person = UserFactory(balance="100.00")
    with pytest.raises(error):
        plans.subscribe(session, INTERNAL.at(T0), str(person.id), code)
    assert session.scalar(select(func.count()).select_from(Subscription)) == 0


def test_subscribing_someone_unknown_or_short_of_money_or_disabled_writes_nothing_but_a_refusals_trace(session):
    make_plan(session)
    with pytest.raises(UserNotFound):
        plans.subscribe(session, INTERNAL.at(T0), "4c6f0c2e-9b8a-4f4e-9d6b-3c1f8b2a7e10", "pro")
    short = UserFactory(balance="29.99")
    with pytest.raises(InsufficientBalance) as refused:
        subscribe(session, short)
    assert (refused.value.balance, refused.value.available) == (Decimal("29.9900"), Decimal("29.9900"))
    disabled = UserFactory(balance="100.00", disabled_at=T0)
    with pytest.raises(AccountDisabled):
        subscribe(session, disabled)
    assert session.scalar(select(func.count()).select_from(Subscription)) == 0
    assert session.scalar(select(func.count()).select_from(UsageLog)) == 0
    assert balance_of(session, short) == Decimal("29.9900")
    refusals = session.scalars(select(AuditLog.details).where(AuditLog.action == "usage.insufficient_balance")).all()
    assert [r["request_id"].startswith("subscription:") and r["model"] == "plan:pro" for r in refusals] == [True]


# --- the job: renewals and lapses -------------------------------------------------------------------


def test_a_subscription_renews_over_three_periods_each_charged_and_granted_once(session):
    make_plan(session)
    person = UserFactory(balance="100.00")
    sub = subscribe(session, person).subscription  # 100 - 30 + 50 = 120
    assert plans.renew_due(session, SYSTEM.at(local(2027, 2, 28) - MINUTE)) == plans.RenewalRun(0, 0)

    assert plans.renew_due(session, SYSTEM.at(local(2027, 2, 28) + MINUTE)) == plans.RenewalRun(1, 0)
    assert balance_of(session, person) == Decimal("90.0000")  # 50 of plan money expired, 30 charged, 50 granted
    assert plans.renew_due(session, SYSTEM.at(local(2027, 2, 28) + 2 * MINUTE)) == plans.RenewalRun(0, 0)
    assert plans.renew_due(session, SYSTEM.at(local(2027, 3, 31) + MINUTE)) == plans.RenewalRun(1, 0)
    assert balance_of(session, person) == Decimal("60.0000")

    session.refresh(sub)
    assert (sub.status, sub.periods) == ("active", 3)
    assert (sub.current_period_start, sub.current_period_end) == (local(2027, 3, 31), local(2027, 4, 30))
    assert [r[0] for r in charges_of(session, person)] == [f"subscription:{sub.id}:{n}" for n in (1, 2, 3)]
    assert [lot.expires_at for lot in plan_lots(session, person)] == [
        local(2027, 2, 28),
        local(2027, 3, 31),
        local(2027, 4, 30),
    ]
    renewed = sorted(events(session, "subscription.renewed"), key=lambda e: e["period"])
    assert [(e["period"], e["amount"], e["allowance"], e["current_period_end"]) for e in renewed] == [
        (2, "30.00", "50.00", local(2027, 3, 31).isoformat()),
        (3, "30.00", "50.00", local(2027, 4, 30).isoformat()),
    ]
    assert renewed[-1]["balance"] == "60.00" and renewed[-1]["subscription_id"] == str(sub.id)
    assert [e["amount"] for e in events(session, "credit.expired")] == ["50.00", "50.00"]
    assert list(find_breaches(session)) == []


def test_a_renewal_the_balance_cannot_pay_lapses_and_sells_no_part_of_a_period(session):
    make_plan(session)
    person = UserFactory(balance="40.00")
    sub = subscribe(session, person).subscription  # 10 left, and 50 of plan money until 28 February
    end = local(2027, 2, 28)
    assert plans.renew_due(session, SYSTEM.at(end + MINUTE)) == plans.RenewalRun(0, 1)

    session.refresh(sub)
    assert (sub.status, sub.auto_renew, sub.lapse_reason, sub.lapsed_at) == (
        "lapsed",
        False,
        "insufficient_balance",
        end,
    )
    assert balance_of(session, person) == Decimal("10.0000")  # the allowance expired; nothing charged
    assert len(charges_of(session, person)) == 1 and len(plan_lots(session, person)) == 1
    [lapsed] = events(session, "subscription.lapsed")
    assert lapsed == {
        "user_id": str(person.id),
        "subscription_id": str(sub.id),
        "plan": "pro",
        "reason": "insufficient_balance",
        "periods": 1,
        "ended_at": end.isoformat(),
        "balance": "10.00",
        "available": "10.00",
    }
    assert session.scalar(select(func.count()).where(AuditLog.action == "usage.insufficient_balance")) == 1
    assert plans.lapsed_for_money(session, person.id, end + MINUTE).id == sub.id  # the pages' banner
    assert plans.lapsed_for_money(session, person.id, end + timedelta(days=15)) is None
    assert plans.renew_due(session, SYSTEM.at(end + 2 * MINUTE)) == plans.RenewalRun(0, 0)
    assert list(find_breaches(session)) == []


def test_a_cancelled_subscription_keeps_its_allowance_then_lapses_uncharged(session):
    make_plan(session)
    person = UserFactory(balance="100.00")
    sub = subscribe(session, person).subscription
    done = plans.cancel(session, INTERNAL.at(T0 + MINUTE), str(sub.id))
    assert (done.subscription.status, done.subscription.auto_renew) == ("cancelled", False)
    assert done.money.balance == Decimal("120.0000")  # the allowance stays
    again = plans.cancel(session, INTERNAL.at(T0 + 2 * MINUTE), str(sub.id))  # nothing more to do
    assert again.subscription.cancelled_at == T0 + MINUTE
    assert session.scalar(select(func.count()).where(AuditLog.action == "plan.cancelled")) == 1

    assert plans.renew_due(session, SYSTEM.at(local(2027, 2, 28))) == plans.RenewalRun(0, 1)
    session.refresh(sub)
    assert (sub.status, sub.lapse_reason) == ("lapsed", "cancelled")
    assert [e["reason"] for e in events(session, "subscription.lapsed")] == ["cancelled"]
    assert balance_of(session, person) == Decimal("70.0000") and len(charges_of(session, person)) == 1
    assert plans.lapsed_for_money(session, person.id, local(2027, 2, 28)) is None  # no top-up to offer
    again = subscribe(session, person, at=local(2027, 3, 1))  # a lapsed one holds nothing
    assert again.subscription.id != sub.id and again.subscription.periods == 1
    assert list(find_breaches(session)) == []


def test_only_ones_own_subscription_is_cancelled_from_a_page(session):
    make_plan(session)
    person, someone = UserFactory(balance="100.00"), UserFactory()
    sub = subscribe(session, person).subscription
    for wrong in (str(sub.id), "not-an-id", "4c6f0c2e-9b8a-4f4e-9d6b-3c1f8b2a7e10"):
        with pytest.raises(SubscriptionNotFound):
            plans.cancel(session, INTERNAL.at(T0), wrong, user_id=someone.id)
    assert plans.cancel(session, INTERNAL.at(T0), str(sub.id), user_id=person.id).subscription.status == "cancelled"


def test_a_retired_plan_sells_nothing_new_and_its_subscriptions_lapse_at_their_periods_end(session):
    make_plan(session)
    person = UserFactory(balance="100.00")
    sub = subscribe(session, person).subscription
    plans.retire_plan(session, ADMIN.at(T0 + MINUTE), "pro", reason="replaced by pro-2")
    with pytest.raises(PlanRetired):
        subscribe(session, UserFactory(balance="100.00"), at=T0 + 2 * MINUTE)
    assert plans.renew_due(session, SYSTEM.at(local(2027, 2, 28) - MINUTE)) == plans.RenewalRun(0, 0)
    assert kinds_of(session, person.id, local(2027, 2, 28) - MINUTE).plan == Decimal("50.0000")  # still there

    assert plans.renew_due(session, SYSTEM.at(local(2027, 2, 28))) == plans.RenewalRun(0, 1)
    session.refresh(sub)
    assert (sub.status, sub.lapse_reason) == ("lapsed", "plan_retired")
    assert len(charges_of(session, person)) == 1
    with pytest.raises(InvalidRequest):
        plans.retire_plan(session, ADMIN, "pro", reason="again")


def test_an_edit_applies_from_the_next_period(session):
    make_plan(session, price="30.00", allowance="50.00")
    person = UserFactory(balance="100.00")
    subscribe(session, person)
    change = plans.preview_edit_plan(session, "pro", name_zh="专业版", name_en="Pro", price="40", allowance="60.00")
    assert change.changes == {
        "price": (Decimal("30.0000"), Decimal("40.00")),
        "allowance": (Decimal("50.0000"), Decimal("60.00")),
    }
    plans.edit_plan(
        session, ADMIN, "pro", name_zh="专业版", name_en="Pro", price="40", allowance="60.00", reason="new prices"
    )
    period_1 = session.scalar(select(SubscriptionPeriod).where(SubscriptionPeriod.n == 1))
    assert (period_1.price, period_1.allowance) == (Decimal("30.0000"), Decimal("50.0000"))  # sold at that
    plans.renew_due(session, SYSTEM.at(local(2027, 2, 28)))
    assert charges_of(session, person)[-1][1] == Decimal("40.0000")
    assert plan_lots(session, person)[-1][0] == Decimal("60.0000")
    assert balance_of(session, person) == Decimal("90.0000")  # 120 - 50 expired - 40 + 60
    with pytest.raises(InvalidRequest, match="Nothing to change"):
        plans.edit_plan(
            session, ADMIN, "pro", name_zh="专业版", name_en="Pro", price="40.00", allowance="60", reason="same"
        )
    assert list(find_breaches(session)) == []


def test_a_job_that_did_not_run_for_months_sells_the_period_under_way_not_those_missed(session):
    make_plan(session)
    person = UserFactory(balance="100.00")
    sub = subscribe(session, person).subscription
    plans.renew_due(session, SYSTEM.at(local(2027, 4, 15)))  # 28 February and 31 March passed unseen
    session.refresh(sub)
    assert (sub.periods, sub.current_period_start, sub.current_period_end) == (
        2,
        local(2027, 3, 31),
        local(2027, 4, 30),
    )
    assert [r[0] for r in charges_of(session, person)][-1] == f"subscription:{sub.id}:2"
    assert list(find_breaches(session)) == []


def test_the_person_time_zone_kept_at_the_start_counts_the_periods(session):
    make_plan(session, code="weekly", period="week", price="5.00", allowance="8.00")
    person = UserFactory(balance="100.00", timezone="America/New_York")
    sub = subscribe(session, person, code="weekly", at=local(2027, 3, 10, 9, 0, tz=ZoneInfo("America/New_York")))
    assert sub.subscription.timezone == "America/New_York"
    assert sub.subscription.current_period_end == local(2027, 3, 17, 9, 0, tz=ZoneInfo("America/New_York"))


# --- the allowance and the wallet ------------------------------------------------------------------------


def test_a_charge_larger_than_the_allowance_left_takes_the_rest_from_the_wallet(session, settings):
    make_plan(session, price="30.00", allowance="50.00")
    person = UserFactory()
    settle_by_notify(session, PaymentFactory(user=person, amount=Decimal("100.00")), settings)
    subscribe(session, person)  # paid 70, plan 50
    done = charge(session, person, amount="60.00", request_id="image-1", ctx=INTERNAL.at(T0 + MINUTE))
    assert done.usage.drawn == {"paid": Decimal("10.0000"), "granted": Decimal(0), "plan": Decimal("50.0000")}
    assert balance_of(session, person) == Decimal("60.0000")
    assert list(find_breaches(session)) == []


def test_a_capture_larger_than_the_allowance_left_is_charged_whole_from_allowance_and_wallet(session, settings):
    """new-api #6911: a job that cost more than what was set aside for it must be charged in full."""
    make_plan(session, price="30.00", allowance="50.00")
    person = UserFactory()
    settle_by_notify(session, PaymentFactory(user=person, amount=Decimal("130.00")), settings)
    subscribe(session, person)  # paid 100, plan 50
    charge(session, person, amount="20.00", request_id="image-1", ctx=INTERNAL.at(T0 + MINUTE))  # plan 30 left
    held = place_hold(
        session, user_id=person.id, amount="100.00", model="video", request_id="video-1", ctx=INTERNAL.at(T0 + MINUTE)
    )
    captured = capture_hold(session, hold_id=held.hold.id, amount="100.00", ctx=INTERNAL.at(T0 + 2 * MINUTE))
    usage_id = captured.hold.usage_log_id
    drawn = drawn_by_usage(session, [usage_id])[usage_id]
    assert drawn == {"paid": Decimal("70.0000"), "granted": Decimal(0), "plan": Decimal("30.0000")}
    assert drawn["plan"] + drawn["paid"] == Decimal("100.00") == session.get(UsageLog, usage_id).amount
    assert balance_of(session, person) == Decimal("30.0000")  # 150 - 20 - 100
    assert kinds_of(session, person.id, T0 + 2 * MINUTE).plan == 0
    assert list(find_breaches(session)) == []


# --- the back office ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"code": "Pro"}, "code"),
        ({"code": "p"}, "code"),
        ({"code": "pro"}, "code"),  # taken
        ({"name_zh": " "}, "name_zh"),
        ({"name_en": "x" * 101}, "name_en"),
        ({"price": "0"}, "price"),
        ({"price": "1.001"}, "price"),
        ({"allowance": "-5"}, "allowance"),
        ({"period": "year"}, "period"),
    ],
)
def test_a_plan_is_made_only_of_checked_fields(session, fields, field):
    make_plan(session)
    good = {"code": "max", "name_zh": "旗舰版", "name_en": "Max", "price": "99", "period": "month", "allowance": "150"}
    with pytest.raises(InvalidRequest) as refused:
        plans.create_plan(session, ADMIN, reason="launch", **{**good, **fields})
    assert refused.value.field == field


def test_plans_are_listed_with_their_holders_those_sold_first(session):
    make_plan(session, code="pro", price="30.00")
    make_plan(session, code="lite", price="10.00", allowance="12.00")
    make_plan(session, code="old", price="5.00", allowance="6.00")
    plans.retire_plan(session, ADMIN, "old", reason="gone")
    subscribe(session, UserFactory(balance="100.00"))
    listed = plans.list_plans(session)
    assert [(f.plan.code, f.holders) for f in listed] == [("lite", 0), ("pro", 1), ("old", 0)]
    assert [f.plan.code for f in plans.list_plans(session, for_sale=True)] == ["lite", "pro"]
    actions = session.scalars(select(AuditLog.action).where(AuditLog.action.like("plans.%"))).all()
    assert sorted(actions) == ["plans.created", "plans.created", "plans.created", "plans.retired"]


def test_holdings_show_what_is_left_of_the_current_allowance(session):
    make_plan(session)
    person = UserFactory(balance="100.00")
    subscribe(session, person)
    charge(session, person, amount="12.50", request_id="image-1", ctx=INTERNAL.at(T0 + MINUTE))
    [holding] = plans.holdings(session, person.id, T0 + MINUTE)
    assert (holding.plan.code, holding.left, holding.period.ends_at) == ("pro", Decimal("37.5000"), local(2027, 2, 28))
    [holding] = plans.holdings(session, person.id, local(2027, 2, 28))
    assert holding.left == 0  # the period has ended: the job renews or lapses it


def test_verify_finds_a_subscription_whose_periods_do_not_add_up(session):
    make_plan(session)
    sub = subscribe(session, UserFactory(balance="100.00")).subscription
    session.execute(text("UPDATE subscriptions SET periods = 2 WHERE id = :id"), {"id": sub.id})
    breaches = list(find_breaches(session))
    assert [b.invariant for b in breaches] == ["21 a subscription's periods are 1 to n, the last its current one"]


# --- spending limits (SPEC 22) ----------------------------------------------------------------------------


def test_a_price_past_a_spending_limit_is_refused_and_a_renewal_past_it_lapses(session):
    make_plan(session)
    person = UserFactory(balance="100.00")
    set_limit(session, INTERNAL, user_id=person.id, period="month", amount="20.00", set_by=LimitSetter.PERSON)
    with pytest.raises(SpendingLimitReached):
        subscribe(session, person)
    assert session.scalar(select(func.count()).select_from(Subscription)) == 0
    set_limit(session, INTERNAL, user_id=person.id, period="month", amount="40.00", set_by=LimitSetter.PERSON)
    sub = subscribe(session, person).subscription  # 30 of January's 40
    set_limit(session, INTERNAL, user_id=person.id, period="month", amount="20.00", set_by=LimitSetter.PERSON)
    assert plans.renew_due(session, SYSTEM.at(local(2027, 2, 28))) == plans.RenewalRun(0, 1)
    session.refresh(sub)
    assert (sub.status, sub.lapse_reason) == ("lapsed", "spending_limit_reached")
    assert list(find_breaches(session)) == []
