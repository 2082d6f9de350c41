"""Low balance (SPEC 16): one balance.low each time a charge or a hold takes the available amount from
at or above the threshold to below it, none while it stays below, again after a top-up lifts it."""

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.errors import InvalidRequest
from ledger.models import Event, User
from ledger.services.books.batch_charges import charge_batch
from ledger.services.books.holds import place_hold, release_hold
from ledger.services.books.low_balance import low_threshold, set_own_threshold
from ledger.services.context import INTERNAL, SYSTEM
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import ADMIN, settle_by_notify
from tests.helpers import charge as charge_at

SITE = Decimal("10.00")


def lows(session, person) -> list[dict]:
    query = select(Event.data).where(Event.user_id == person.id, Event.type == "balance.low")
    return sorted(session.scalars(query), key=lambda d: -Decimal(d["balance"]))


@pytest.fixture
def ctx(settings):
    """An operation context whose site threshold is SITE (LOW_BALANCE_THRESHOLD of its settings)."""
    return INTERNAL.using(replace(settings, LOW_BALANCE_THRESHOLD=SITE))


def charge(session, person, amount, request_id, ctx):
    return charge_at(session, person, amount, request_id, model="m", ctx=ctx)


def test_down_to_exactly_the_threshold_is_not_low_one_cent_below_is(session, ctx):
    person = UserFactory(balance="12.00")
    charge(session, person, "2.00", "r1", ctx)  # 12.00 -> 10.00: at the threshold, not below
    assert lows(session, person) == []
    assert low_threshold(session, person.id, SITE, datetime.now(UTC)) is None
    charge(session, person, "0.01", "r2", ctx)  # 10.00 -> 9.99: from at to below
    [event] = lows(session, person)
    assert event == {
        "user_id": str(person.id),
        "usage_id": event["usage_id"],
        "amount": "0.01",
        "threshold": "10.00",
        "balance": "9.99",
        "available": "9.99",
    }
    assert low_threshold(session, person.id, SITE, datetime.now(UTC)) == SITE  # the banner shows


def test_no_banner_for_a_person_whose_amount_was_never_at_the_threshold(session, ctx):
    """SPEC 16: the banner follows a crossing; below the threshold from the start is not one."""
    new = UserFactory()  # ¥0.00, never charged
    assert low_threshold(session, new.id, SITE, datetime.now(UTC)) is None
    small = UserFactory(balance="5.00")  # given less than the threshold, then charged
    charge(session, small, "1.00", "r1", ctx)  # 5 -> 4: below, but it did not cross
    assert lows(session, small) == [] and low_threshold(session, small.id, SITE, datetime.now(UTC)) is None


def test_the_pages_greet_a_new_person_without_the_banner_and_show_it_after_a_crossing(client, auth, session, ctx):
    auth.login(UserFactory())
    for path in ("/usage", "/invites", "/account"):
        assert 'data-testid="low-balance"' not in client.get(path).get_data(as_text=True), path
    auth.logout()
    crossed = UserFactory(balance="12.00")
    charge(session, crossed, "3.00", "r1", ctx)  # 12 -> 9: below ¥10
    auth.login(crossed)
    page = client.get("/usage").get_data(as_text=True)
    assert 'data-testid="low-balance"' in page and "你的可用余额已低于 ¥10.00。" in page


def test_it_fires_once_while_below_and_again_after_a_top_up_lifts_it(session, ctx, settings):
    person = UserFactory(balance="11.00")
    for n in range(3):
        charge(session, person, "1.00", f"r{n}", ctx)  # 11 -> 10 -> 9 (low) -> 8 (still low)
    assert [e["available"] for e in lows(session, person)] == ["9.00"]
    order = PaymentFactory(user=person, amount=Decimal("5.00"))
    settle_by_notify(session, order, settings)  # 8 -> 13: back above, nothing sent for rising
    assert low_threshold(session, person.id, SITE, datetime.now(UTC)) is None
    charge(session, person, "4.00", "again", ctx)  # 13 -> 9: crosses again
    assert [e["available"] for e in lows(session, person)] == ["9.00", "9.00"]
    assert len({e["usage_id"] for e in lows(session, person)}) == 2


def test_a_hold_can_cross_it_and_releasing_it_lifts_the_banner(session, ctx):
    person = UserFactory(balance="15.00")
    held = place_hold(session, user_id=person.id, amount="6.00", model="v", request_id="h", ctx=ctx)
    [event] = lows(session, person)
    assert (event["hold_id"], event["balance"], event["available"]) == (str(held.hold.id), "15.00", "9.00")
    release_hold(session, hold_id=held.hold.id, ctx=INTERNAL)
    assert low_threshold(session, person.id, SITE, datetime.now(UTC)) is None


def test_a_hold_past_its_expiry_no_longer_lowers_the_banner_nor_an_admin_debit(session):
    """Before any transaction or the job writes the expiry, the money is available again (SPEC 11)."""
    from sqlalchemy import text

    from ledger.services.backoffice.people import preview_adjust

    person = UserFactory(balance="20.00")
    place_hold(session, user_id=person.id, amount="15.00", model="v", request_id="h", ctx=INTERNAL)
    assert low_threshold(session, person.id, SITE, datetime.now(UTC)) == SITE  # 5.00 available
    past = "UPDATE holds SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'"
    session.execute(text(past))
    assert (
        low_threshold(session, person.id, SITE, datetime.now(UTC)) is None
    )  # 20.00 available, the stored held not yet written
    # what the admin's confirmation step shows and allows
    assert preview_adjust(session, ADMIN, person.id, "10.00", debit=True).available == Decimal("20.00")


def test_a_batch_sends_one_event_at_the_item_that_crosses(session, ctx):
    person = UserFactory(balance="10.50")
    items = [
        {"user_id": str(person.id), "amount": "0.25", "model": "m", "request_id": f"b{n}"} for n in range(4)
    ]  # 10.50 -> 10.25 -> 10.00 -> 9.75 (crosses) -> 9.50
    results = charge_batch(session, charges=items, ctx=ctx)
    [event] = lows(session, person)
    assert event["usage_id"] == str(results[2].usage.id) and event["available"] == "9.75"


def test_a_person_sets_their_own_threshold_zero_switches_it_off_empty_is_the_sites(session, ctx):
    person = UserFactory(balance="30.00")
    assert set_own_threshold(session, person.id, "２５.00", ctx=SYSTEM) == Decimal("25.00")  # typed full-width
    charge(session, person, "6.00", "r1", ctx)  # 30 -> 24: below their 25
    assert [e["threshold"] for e in lows(session, person)] == ["25.00"]
    assert set_own_threshold(session, person.id, "0", ctx=SYSTEM) == Decimal("0.00")
    charge(session, person, "20.00", "r2", ctx)  # 24 -> 4: below the site's, but they said never
    assert len(lows(session, person)) == 1 and low_threshold(session, person.id, SITE, datetime.now(UTC)) is None
    assert set_own_threshold(session, person.id, "", ctx=SYSTEM) is None
    assert session.scalar(select(User.low_balance_threshold).where(User.id == person.id)) is None


@pytest.mark.parametrize("typed", ["-1", "abc", "100000.01", "1.005", "1e3"])
def test_a_bad_threshold_is_refused_and_nothing_changes(session, typed):
    person = UserFactory()
    set_own_threshold(session, person.id, "5.00", ctx=SYSTEM)
    with pytest.raises(InvalidRequest) as refused:
        set_own_threshold(session, person.id, typed, ctx=SYSTEM)
    assert refused.value.field == "low_balance_threshold"
    assert session.scalar(select(User.low_balance_threshold).where(User.id == person.id)) == Decimal("5.00")


def test_the_site_threshold_comes_from_the_settings_through_the_api(
    client, session, internal_headers, app, monkeypatch
):
    person = UserFactory(balance="60.00")
    monkeypatch.setitem(app.config, "LEDGER", replace(app.config["LEDGER"], LOW_BALANCE_THRESHOLD=Decimal("50.00")))
    body = {"user_id": str(person.id), "amount": "15.00", "model": "m", "request_id": "api-1"}
    assert client.post("/api/billing/deduct", json=body, headers=internal_headers).status_code == 200
    assert [e["threshold"] for e in lows(session, person)] == ["50.00"]


def test_every_charge_and_hold_reads_the_site_threshold_from_its_contexts_settings(session, settings):
    fifty = INTERNAL.using(replace(settings, LOW_BALANCE_THRESHOLD=Decimal("50.00")))
    people = [UserFactory(balance="60.00") for _ in range(3)]
    charge_at(session, people[0], "15.00", "one", model="m", ctx=fifty)
    place_hold(session, user_id=people[1].id, amount="15.00", model="v", request_id="hold", ctx=fifty)
    item = {"user_id": str(people[2].id), "amount": "15.00", "model": "m", "request_id": "item"}
    charge_batch(session, charges=[item], ctx=fifty)
    assert [[e["threshold"] for e in lows(session, p)] for p in people] == [["50.00"]] * 3
    charge_at(session, UserFactory(balance="60.00"), "15.00", "default", model="m")  # no settings: the default 10.00
    assert session.scalar(select(func.count()).select_from(Event).where(Event.type == "balance.low")) == 3
