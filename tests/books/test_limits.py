"""Spending limits (books.limits, SPEC 22): a day's or a month's spending from the wallet, in the
person's time zone, capped by the lower of their own limit and an admin's; checked under the
account's lock by the one charge engine for deducts, batch items and holds (captures and releases
never fail for a limit), with limit.reached once per period and limit. The clock is the context's."""

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.db import atomic
from ledger.errors import SpendingLimitReached
from ledger.models import AuditLog, BillingAccount, Event, EventType, LedgerKind, LimitPeriod, LimitSetter, UsageLog
from ledger.services.books.accounts import adjust_balance, credit
from ledger.services.books.batch_charges import charge_batch
from ledger.services.books.charges import charge_usage
from ledger.services.books.holds import capture_hold, place_hold, release_hold
from ledger.services.books.limits import limits_of, period_bounds, set_limit, spent_since
from ledger.services.context import INTERNAL, SYSTEM
from tests.factories import UserFactory
from tests.helpers import ADMIN, at, funded_user, run_together

SHANGHAI = period_bounds.__globals__["ZoneInfo"]("Asia/Shanghai")
NOON = at("2027-01-10 12:00")  # Shanghai time, as UTC instants
LATE = at("2027-01-10 23:59")
MIDNIGHT = at("2027-01-11 00:00")


def person(session, balance="100.00"):
    user = UserFactory()
    adjust_balance(session, user_id=user.id, amount=Decimal(balance), memo="money", ctx=SYSTEM.at(NOON - timedelta(1)))
    return user


def limit(session, user, period="day", amount="10.00", by=LimitSetter.PERSON):
    ctx = INTERNAL if by == LimitSetter.PERSON else ADMIN
    return set_limit(session, ctx, user_id=user.id, period=period, amount=amount, set_by=by, reason="cap")


def deduct(session, user, amount, request_id, when=NOON):
    return charge_usage(
        session, user_id=user.id, amount=amount, model="m", request_id=request_id, ctx=INTERNAL.at(when)
    )


def spent_today(session, user, when=NOON) -> Decimal:
    return spent_since(session, user.id, [period_bounds(LimitPeriod.DAY, when, SHANGHAI)[0]])[0]


def reached_events(session, user) -> list[dict]:
    return [
        e.data
        for e in session.scalars(
            select(Event).where(Event.user_id == user.id, Event.type == EventType.LIMIT_REACHED)
        ).all()
    ]


def test_a_charge_that_would_pass_the_days_limit_is_refused_with_the_figures_and_nothing_written(session):
    user = person(session)
    limit(session, user)
    deduct(session, user, "4.00", "a")
    deduct(session, user, "4.00", "b")
    with pytest.raises(SpendingLimitReached) as refused:
        deduct(session, user, "2.01", "c")
    assert refused.value.details == {
        "limit": Decimal("10.00"),
        "spent": Decimal("8.00"),
        "period": "day",
        "resets_at": "2027-01-11T00:00:00+08:00",
    }
    assert session.get(BillingAccount, user.id).balance == Decimal("92.00")
    assert session.scalar(select(func.count()).select_from(UsageLog).where(UsageLog.user_id == user.id)) == 2
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "usage.spending_limit_reached")).one()
    assert (audit.details["limit"], audit.details["spent"], audit.details["amount"]) == ("10.00", "8.00", "2.01")
    # Refused: limit.reached once for the day, however many more are refused.
    with pytest.raises(SpendingLimitReached):
        deduct(session, user, "5.00", "d")
    (event,) = reached_events(session, user)
    assert {k: event[k] for k in ("period", "set_by", "limit", "spent", "period_start", "resets_at")} == {
        "period": "day",
        "set_by": "person",
        "limit": "10.00",
        "spent": "8.00",
        "period_start": "2027-01-10T00:00:00+08:00",
        "resets_at": "2027-01-11T00:00:00+08:00",
    }
    deduct(session, user, "2.00", "e")  # up to the limit exactly is fine
    assert spent_today(session, user) == Decimal("10.00")


def test_reaching_the_limit_exactly_sends_limit_reached_once(session):
    user = person(session)
    limit(session, user, amount="5.00")
    deduct(session, user, "2.00", "a")
    assert reached_events(session, user) == []
    deduct(session, user, "3.00", "b")
    assert [e["spent"] for e in reached_events(session, user)] == ["5.00"]
    with pytest.raises(SpendingLimitReached):
        deduct(session, user, "0.01", "c")
    assert len(reached_events(session, user)) == 1


def test_the_day_resets_at_the_persons_local_midnight(session):
    user = person(session)
    limit(session, user, amount="3.00")
    deduct(session, user, "3.00", "late", when=LATE)  # 23:59 in Shanghai
    with pytest.raises(SpendingLimitReached) as refused:
        deduct(session, user, "1.00", "still-today", when=LATE + timedelta(seconds=30))
    assert refused.value.details["resets_at"] == "2027-01-11T00:00:00+08:00"
    deduct(session, user, "3.00", "tomorrow", when=MIDNIGHT)  # 00:00 in Shanghai: 16:00 UTC the day before
    assert MIDNIGHT.isoformat() == "2027-01-10T16:00:00+00:00"  # (the UTC day has not turned yet)


def test_a_person_in_another_zone_resets_at_their_own_midnight(session):
    user = person(session)
    user.timezone = "Europe/London"
    session.flush()
    limit(session, user, amount="3.00")
    deduct(session, user, "3.00", "a", when=at("2027-01-11 07:59"))  # 23:59 in London
    with pytest.raises(SpendingLimitReached):
        deduct(session, user, "1.00", "b", when=at("2027-01-11 07:59:30"))
    deduct(session, user, "1.00", "c", when=at("2027-01-11 08:00"))  # 00:00 in London


def test_the_month_counts_from_the_first_and_the_day_is_checked_first(session):
    user = person(session, "500.00")
    limit(session, user, "month", "20.00")
    limit(session, user, "day", "15.00")
    deduct(session, user, "12.00", "jan-31", when=at("2027-01-31 12:00"))
    with pytest.raises(SpendingLimitReached) as day_first:
        deduct(session, user, "4.00", "jan-31-b", when=at("2027-01-31 13:00"))
    assert day_first.value.details["period"] == "day"  # the day's 15 before the month's 20
    with pytest.raises(SpendingLimitReached) as month:
        deduct(session, user, "9.00", "feb-0", when=at("2027-01-31 23:00"))
    assert month.value.details["period"] == "day"
    deduct(session, user, "9.00", "feb-1", when=at("2027-02-01 00:00"))  # a new month and day
    deduct(session, user, "9.00", "feb-2", when=at("2027-02-02 09:00"))
    with pytest.raises(SpendingLimitReached) as february:  # the day's 11.01 fits; the month's 20.01 not
        deduct(session, user, "2.01", "feb-2-b", when=at("2027-02-02 10:00"))
    assert (february.value.details["period"], february.value.details["resets_at"]) == (
        "month",
        "2027-03-01T00:00:00+08:00",
    )


def test_the_lower_of_the_persons_and_the_admins_limit_applies(session):
    user = person(session)
    limit(session, user, amount="8.00", by=LimitSetter.PERSON)
    limit(session, user, amount="5.00", by=LimitSetter.ADMIN)
    with pytest.raises(SpendingLimitReached) as refused:
        deduct(session, user, "6.00", "a")
    assert refused.value.details["limit"] == Decimal("5.00")
    uses = limits_of(session, user.id, NOON, SHANGHAI)
    assert [(u.set_by.value, u.amount, u.applies) for u in uses] == [
        ("person", Decimal("8.00"), False),
        ("admin", Decimal("5.00"), True),
    ]
    admin_audit = session.scalars(
        select(AuditLog).where(AuditLog.action == "limit.set", AuditLog.actor == "admin")
    ).one()
    assert (admin_audit.details["reason"], admin_audit.details["amount"]) == ("cap", "5.00")
    set_limit(session, ADMIN, user_id=user.id, period="day", amount="", set_by=LimitSetter.ADMIN, reason="lifted")
    deduct(session, user, "6.00", "b")


def test_plan_money_does_not_count_and_a_charge_counts_only_its_wallet_part(session):
    user = person(session, "20.00")  # given money
    with atomic(session):
        credit(
            session,
            user_id=user.id,
            amount=Decimal("5.00"),
            kind=LedgerKind.PLAN,
            ctx=SYSTEM.at(NOON - timedelta(hours=1)),
            action="plan.granted",
            expires_at=NOON + timedelta(days=30),
        )
    limit(session, user, amount="3.00")
    # Plan money goes first among... the gift never expires, the plan lot does: the plan lot first.
    deduct(session, user, "7.00", "a")  # 5.00 of plan money, 2.00 of the wallet
    assert spent_today(session, user) == Decimal("2.00")
    with pytest.raises(SpendingLimitReached) as refused:
        deduct(session, user, "1.01", "b")
    assert refused.value.details["spent"] == Decimal("2.00")
    deduct(session, user, "1.00", "c")


def test_a_hold_counts_whole_when_placed_its_capture_at_its_wallet_part_and_a_release_nothing(session):
    user = person(session)
    limit(session, user, amount="10.00")
    first = place_hold(session, user_id=user.id, amount="6.00", model="v", request_id="h1", ctx=INTERNAL.at(NOON))
    with pytest.raises(SpendingLimitReached) as refused:
        place_hold(session, user_id=user.id, amount="4.01", model="v", request_id="h2", ctx=INTERNAL.at(NOON))
    assert refused.value.details["spent"] == Decimal("6.00")
    capture_hold(session, hold_id=first.hold.id, amount="2.50", ctx=INTERNAL.at(NOON + timedelta(minutes=5)))
    assert spent_today(session, user, NOON + timedelta(minutes=5)) == Decimal("2.50")
    second = place_hold(session, user_id=user.id, amount="7.50", model="v", request_id="h3", ctx=INTERNAL.at(NOON))
    release_hold(session, hold_id=second.hold.id, ctx=INTERNAL.at(NOON + timedelta(minutes=6)))
    assert spent_today(session, user, NOON + timedelta(minutes=6)) == Decimal("2.50")


def test_a_capture_never_fails_for_a_limit_set_after_its_hold(session):
    user = person(session)
    hold = place_hold(session, user_id=user.id, amount="8.00", model="v", request_id="h", ctx=INTERNAL.at(NOON))
    limit(session, user, amount="1.00")  # below what the day has spent already: allowed
    done = capture_hold(session, hold_id=hold.hold.id, amount="8.00", ctx=INTERNAL.at(NOON + timedelta(minutes=1)))
    assert done.hold.status.value == "captured"
    with pytest.raises(SpendingLimitReached):
        deduct(session, user, "0.01", "after")


def test_a_hold_placed_yesterday_counts_yesterday_even_captured_today(session):
    user = person(session)
    limit(session, user, amount="5.00")
    hold = place_hold(
        session, user_id=user.id, amount="5.00", model="v", request_id="h", ttl_seconds=7200, ctx=INTERNAL.at(LATE)
    )
    capture_hold(session, hold_id=hold.hold.id, amount="5.00", ctx=INTERNAL.at(MIDNIGHT + timedelta(minutes=1)))
    deduct(session, user, "5.00", "today", when=MIDNIGHT + timedelta(minutes=2))  # today's 5.00 are untouched


def test_batch_items_are_refused_one_by_one(session):
    user, other = person(session), person(session)
    limit(session, user, amount="1.00")
    items = [
        {"user_id": str(user.id), "amount": "0.60", "model": "m", "request_id": "b1"},
        {"user_id": str(user.id), "amount": "0.60", "model": "m", "request_id": "b2"},
        {"user_id": str(other.id), "amount": "0.60", "model": "m", "request_id": "b3"},
        {"user_id": str(user.id), "amount": "0.40", "model": "m", "request_id": "b4"},
    ]
    results = charge_batch(session, charges=items, ctx=INTERNAL.at(NOON))
    assert [r.status for r in results] == ["charged", "spending_limit_reached", "charged", "charged"]
    assert results[1].error.details["spent"] == Decimal("0.60")
    assert spent_today(session, user) == Decimal("1.00")
    assert [e["spent"] for e in reached_events(session, user)] == ["1.00"]


def test_the_api_answers_402_spending_limit_reached_with_its_fields(client, internal_headers, session):
    user = person(session)
    limit(session, user, amount="1.00")
    body = {"user_id": str(user.id), "amount": "1.50", "model": "m", "request_id": "api-1"}
    refused = client.post("/api/billing/deduct", json=body, headers={**internal_headers, "Accept-Language": "en"})
    assert refused.status_code == 402
    error = refused.get_json()["error"]
    assert {k: error[k] for k in ("code", "limit", "spent", "period")} == {
        "code": "spending_limit_reached",
        "limit": "1.00",
        "spent": "0.00",
        "period": "day",
    }
    assert error["resets_at"].endswith("+08:00")
    assert error["message"] == "This would pass your daily spending limit of ¥1.00 (¥0.00 spent today)."


@pytest.mark.parametrize("amount", ["-1", "1.001", "abc", "1000000.01", 5])
def test_a_bad_limit_is_refused_naming_the_field(session, amount):
    user = person(session)
    with pytest.raises(Exception) as refused:
        limit(session, user, amount=amount)
    assert (refused.value.code, refused.value.field) == ("invalid_request", "amount")
    assert limits_of(session, user.id, NOON, SHANGHAI) == []


@pytest.mark.committed
def test_fifty_parallel_requests_end_exactly_at_the_daily_limit_never_a_fen_over(committed):
    """30 deducts, 10 holds and 5 batches of two, 0.20 each, are exactly the ¥10.00 limit; ten more
    deducts at the same instant must all be refused, whichever order the lock gives them."""
    user = funded_user(committed, "100.00")
    with committed.session() as session:
        limit(session, user, amount="10.00")

    def work(i):
        with committed.session() as session:
            if i < 40:
                return deduct(session, user, "0.20", f"d{i}", when=NOON)
            if i < 50:
                return place_hold(
                    session, user_id=user.id, amount="0.20", model="v", request_id=f"h{i}", ctx=INTERNAL.at(NOON)
                )
            items = [
                {"user_id": str(user.id), "amount": "0.20", "model": "m", "request_id": f"b{i}-{n}"} for n in range(2)
            ]
            return charge_batch(session, charges=items, ctx=INTERNAL.at(NOON))

    results = run_together(55, work)
    errors = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(e, SpendingLimitReached) for e in errors), errors
    refused_items = sum(1 for r in results if isinstance(r, list) for item in r if item.status != "charged")
    assert len(errors) + refused_items == 10  # 12.00 asked, 10.00 allowed, 0.20 each
    with committed.session() as session:
        assert spent_today(session, user) == Decimal("10.00")
        account = session.get(BillingAccount, user.id)
        assert account.balance - account.held == Decimal("90.00")
        assert len(reached_events(session, user)) == 1


def test_a_batch_through_the_api_answers_the_refused_item_in_its_place(client, internal_headers, session):
    user = person(session)
    limit(session, user, amount="1.00")
    items = [
        {"user_id": str(user.id), "amount": "0.80", "model": "m", "request_id": "api-b1"},
        {"user_id": str(user.id), "amount": "0.80", "model": "m", "request_id": "api-b2"},
    ]
    answer = client.post("/api/billing/deduct/batch", json={"charges": items}, headers=internal_headers)
    assert answer.status_code == 200
    charged, refused = answer.get_json()["results"]
    assert (charged["status"], refused["status"]) == ("charged", "spending_limit_reached")
    assert {k: refused["error"][k] for k in ("code", "limit", "spent", "period")} == {
        "code": "spending_limit_reached",
        "limit": "1.00",
        "spent": "0.80",
        "period": "day",
    }
