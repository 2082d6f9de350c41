"""The back office's first page (backoffice.overview): charges of each of the last 30 days counted in the
site's zone, refused notices of the last 24 hours by address; today, 7 and 30 days each from its first midnight."""

from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from ledger.models import NotifyRefusal
from ledger.services.backoffice.overview import overview
from tests.factories import UsageFactory, UserFactory
from tests.helpers import at

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = at("2099-06-30 12:00:00")  # past every row of other tests: only this test's rows count


def test_charges_of_each_of_the_last_30_days_in_the_sites_zone(session):
    user = UserFactory()
    for amount, local in [
        ("1.00", "2099-06-30 00:00:00"),  # today, its first second
        ("0.50", "2099-06-30 11:59:59"),
        ("2.00", "2099-06-01 00:00:00"),  # the first of the 30 days
        ("4.00", "2099-05-31 23:59:59"),  # before them
    ]:
        UsageFactory(user=user, amount=Decimal(amount), created_at=at(local))

    daily = overview(session, tz=SHANGHAI, now=NOW).daily

    assert [day for day, _ in daily] == [date(2099, 6, 1) + timedelta(days=n) for n in range(30)]
    assert {day: spent for day, spent in daily if spent} == {
        date(2099, 6, 1): Decimal("2.00"),
        date(2099, 6, 30): Decimal("1.50"),
    }


def test_refused_notices_of_the_last_24_hours_are_counted_with_their_addresses(session):
    for hours_ago, source, count in [(1, "10.0.0.1", 3), (23, "10.0.0.2", 2), (25, "10.0.0.1", 7)]:
        minute = NOW - timedelta(hours=hours_ago)
        session.add(NotifyRefusal(minute=minute, source=source, reason="bad_sign", count=count, last_at=minute))
    session.flush()
    seen = overview(session, tz=SHANGHAI, now=NOW)
    assert (seen.refused_notifies, seen.refusing_sources) == (5, 2)


def test_the_periods_are_today_7_and_30_days_each_from_midnight_in_the_sites_zone(session):
    for local in ["2099-06-30 00:00:00", "2099-06-24 00:00:00", "2099-06-23 23:59:59", "2099-05-31 23:59:59"]:
        UserFactory(created_at=at(local))
    seen = overview(session, tz=SHANGHAI, now=NOW)
    assert [(p.label, p.people) for p in seen.periods] == [("Today", 1), ("7 days", 2), ("30 days", 3)]
