"""Plans under contention (SPEC 21): real threads, one connection each, committed rows. A person
subscribing many times at once holds one subscription, charged once; renewal runs at the same time
renew each subscription once."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from ledger.errors import AlreadySubscribed
from ledger.models import Subscription, SubscriptionPeriod, UsageLog
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL, SYSTEM
from ledger.services.growth import plans
from tests.helpers import CLI_ADMIN, balance_of, funded_user, run_together

pytestmark = pytest.mark.committed
T0 = datetime(2027, 1, 31, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)
END = datetime(2027, 2, 28, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)


def pro_plan(database) -> None:
    with database.session() as session:
        plans.create_plan(
            session,
            CLI_ADMIN,
            code="pro",
            name_zh="专业版",
            name_en="Pro",
            price="30.00",
            period="month",
            allowance="50.00",
            reason="launch",
        )


def test_one_person_subscribing_twelve_times_at_once_holds_one_subscription_charged_once(committed):
    pro_plan(committed)
    person = funded_user(committed, "100.00")

    def attempt(_i):
        with committed.session() as session:
            return plans.subscribe(session, INTERNAL.at(T0), str(person.id), "pro").subscription.id

    results = run_together(12, attempt)

    made = [r for r in results if not isinstance(r, Exception)]
    assert len(made) == 1, results
    refused = [r for r in results if isinstance(r, AlreadySubscribed)]
    assert len(refused) == 11 and {r.details["subscription_id"] for r in refused} == {str(made[0])}
    with committed.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscription)) == 1
        assert session.scalar(select(func.count()).select_from(UsageLog)) == 1
        assert balance_of(session, person) == Decimal("120.0000")
        assert list(find_breaches(session)) == []


def test_four_renewal_runs_at_once_renew_each_subscription_once(committed):
    pro_plan(committed)
    people = [funded_user(committed, "100.00") for _ in range(10)]
    with committed.session() as session:
        for person in people:
            plans.subscribe(session, INTERNAL.at(T0), str(person.id), "pro")

    def run(_i):
        with committed.session() as session:
            return plans.renew_due(session, SYSTEM.at(END + timedelta(minutes=1)))

    runs = run_together(4, run)

    assert not [r for r in runs if isinstance(r, Exception)], runs
    assert sum(r.renewed for r in runs) == 10 and sum(r.lapsed for r in runs) == 0
    with committed.session() as session:
        assert session.scalar(select(func.count()).select_from(SubscriptionPeriod)) == 20
        assert set(session.scalars(select(Subscription.periods))) == {2}
        assert session.scalar(select(func.count()).where(UsageLog.request_id.like("subscription:%:2"))) == 10
        assert {balance_of(session, p) for p in people} == {Decimal("90.0000")}
        assert list(find_breaches(session)) == []
