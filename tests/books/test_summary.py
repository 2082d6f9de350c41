"""What a person sees first (books.summary): the balance, spending today and over 30 days counted in
their time zone, and the recent usage and top-ups."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from ledger.services.books.summary import account_summary, start_of_day
from tests.factories import PaymentFactory, UsageFactory, UserFactory
from tests.helpers import at

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_day_starts_at_midnight_in_the_persons_zone():
    now = at("2026-03-06 01:00:00")  # 2026-03-05 17:00 UTC
    assert start_of_day(now, SHANGHAI) == datetime(2026, 3, 6, tzinfo=SHANGHAI)
    assert start_of_day(now, SHANGHAI, days_back=29) == datetime(2026, 2, 5, tzinfo=SHANGHAI)
    assert start_of_day(now, ZoneInfo("UTC")) == datetime(2026, 3, 5, tzinfo=ZoneInfo("UTC"))


def test_spending_today_and_over_30_days_counts_whole_days_in_the_persons_zone(session):
    user = UserFactory(balance="100.00")
    for amount, local in [
        ("1.00", "2026-03-06 00:00:00"),  # today, its first second
        ("2.00", "2026-03-05 23:59:59"),  # yesterday
        ("3.00", "2026-02-05 00:00:00"),  # the first of the 30 days
        ("4.00", "2026-02-04 23:59:59"),  # before them
    ]:
        UsageFactory(user=user, amount=Decimal(amount), created_at=at(local))
    UsageFactory(amount=Decimal("8.00"), created_at=at("2026-03-06 09:00:00"))  # someone else

    summary = account_summary(session, user, tz=SHANGHAI, now=at("2026-03-06 12:00:00"))

    assert (summary.spent_today, summary.spent_30_days, summary.count_30_days) == (
        Decimal("1.00"),
        Decimal("6.00"),
        3,
    )
    assert [u.amount for u in summary.recent_usage] == [Decimal(a) for a in ("1.00", "2.00", "3.00", "4.00")]
    assert (summary.balance, summary.available, summary.currency) == (Decimal("100.00"), Decimal("100.00"), "CNY")


def test_the_recent_lists_hold_the_newest_five(session):
    user = UserFactory()
    for n in range(7):
        UsageFactory(user=user, request_id=f"r{n}", created_at=at(f"2026-03-06 10:0{n}:00"))
        PaymentFactory(user=user, created_at=at(f"2026-03-06 11:0{n}:00"))
    summary = account_summary(session, user, tz=SHANGHAI, now=at("2026-03-06 12:00:00"))
    assert [u.request_id for u in summary.recent_usage] == ["r6", "r5", "r4", "r3", "r2"]
    assert [p.created_at for p in summary.recent_topups] == [at(f"2026-03-06 11:0{n}:00") for n in (6, 5, 4, 3, 2)]
