"""Holds (SPEC 11): set aside, captured or released or expired exactly once; available = balance - held."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from ledger.errors import (
    CaptureExceedsHold,
    HoldNotFound,
    HoldSettled,
    InsufficientBalance,
    InvalidRequest,
    RequestIdConflict,
)
from ledger.models import AuditLog, BillingAccount, Hold, LedgerEntry, UsageLog
from ledger.services.books.holds import capture_hold, expire_holds, money_on_hold, place_hold, release_hold, view_hold
from ledger.services.books.invariants import find_breaches, find_warnings
from ledger.services.context import INTERNAL, SYSTEM
from tests.factories import UserFactory
from tests.helpers import charge, count_rows

LONG_AGO = datetime.now(UTC) - timedelta(hours=3)


def hold(session, user, amount="4.00", request_id="job-1", model="motion-video-1", ctx=INTERNAL, **kw):
    return place_hold(session, user_id=user.id, amount=amount, model=model, request_id=request_id, ctx=ctx, **kw)


def account(session, user) -> tuple[Decimal, Decimal]:
    row = session.get(BillingAccount, user.id, populate_existing=True)
    return row.balance, row.held


def actions(session) -> list[str]:
    return list(session.scalars(select(AuditLog.action).where(AuditLog.action.like("hold.%")).order_by(AuditLog.id)))


# --- placing --------------------------------------------------------------------------------------


def test_a_hold_sets_money_aside_without_moving_the_balance(session):
    user = UserFactory(balance="10.00")
    placed = hold(session, user, params={"seconds": 5}, ttl_seconds=120)
    assert (placed.balance, placed.available, placed.replayed) == (Decimal("10.00"), Decimal("6.00"), False)
    assert account(session, user) == (Decimal("10.0000"), Decimal("4.0000"))
    h = placed.hold
    assert (h.status, h.amount, h.params, h.expires_at - h.created_at) == (
        "active",
        Decimal("4.00"),
        {"seconds": 5},
        timedelta(seconds=120),
    )
    assert count_rows(session, LedgerEntry) == 1  # the factory's credit only: a hold is not a balance change
    assert actions(session) == ["hold.placed"]
    assert list(find_breaches(session)) == []


def test_placing_again_answers_the_same_hold_and_another_amount_is_a_conflict(session):
    user = UserFactory(balance="10.00")
    first = hold(session, user)
    again = hold(session, user)
    assert (again.hold.id, again.replayed, again.available) == (first.hold.id, True, Decimal("6.00"))
    with pytest.raises(RequestIdConflict):
        hold(session, user, amount="5.00")
    with pytest.raises(RequestIdConflict):
        hold(session, user, model="chat-pro")
    assert account(session, user) == (Decimal("10.0000"), Decimal("4.0000"))


def test_placing_a_captured_or_released_hold_again_answers_it_as_settled(session):
    user = UserFactory(balance="10.00")
    first = hold(session, user, request_id="captured")
    capture_hold(session, hold_id=first.hold.id, amount="1.50", ctx=INTERNAL)
    again = hold(session, user, request_id="captured")
    assert (again.hold.id, again.replayed, again.hold.status.value) == (first.hold.id, True, "captured")
    other = hold(session, user, request_id="released")
    release_hold(session, hold_id=other.hold.id, ctx=INTERNAL)
    again = hold(session, user, request_id="released")
    assert (again.hold.id, again.replayed, again.hold.status.value) == (other.hold.id, True, "released")
    assert account(session, user) == (Decimal("8.5000"), Decimal("0.0000"))
    assert count_rows(session, UsageLog) == 1


def test_deducts_and_holds_share_one_namespace_of_request_ids(session):
    user = UserFactory(balance="10.00")
    charge(session, user, "1.00", request_id="shared")
    with pytest.raises(RequestIdConflict):
        hold(session, user, request_id="shared", amount="1.00", model="motion-video-1")
    hold(session, user, request_id="held")
    with pytest.raises(RequestIdConflict):
        charge(session, user, "4.00", request_id="held")


def test_holds_and_deducts_are_refused_on_the_available_amount_not_the_balance(session):
    user = UserFactory(balance="10.00")
    hold(session, user, amount="8.00")
    with pytest.raises(InsufficientBalance) as refused:
        charge(session, user, "3.00")  # fits the balance (10), not the available amount (2)
    assert (refused.value.balance, refused.value.available) == (Decimal("10.0000"), Decimal("2.0000"))
    with pytest.raises(InsufficientBalance):
        hold(session, user, request_id="job-2", amount="2.01")
    assert charge(session, user, "2.00").balance == Decimal("8.0000")  # exactly the available amount
    assert account(session, user) == (Decimal("8.0000"), Decimal("8.0000"))
    refusals = session.scalars(select(AuditLog.action).where(AuditLog.action.like("%insufficient%"))).all()
    assert sorted(refusals) == ["hold.insufficient_balance", "usage.insufficient_balance"]


@pytest.mark.parametrize(
    "kwargs",
    [{"ttl_seconds": 59}, {"ttl_seconds": 86_401}, {"ttl_seconds": "1h"}, {"amount": "0"}, {"amount": " 1.00"}],
)
def test_bad_hold_input_is_refused_and_writes_nothing(session, kwargs):
    user = UserFactory(balance="10.00")
    with pytest.raises(InvalidRequest):
        hold(session, user, **kwargs)
    assert (count_rows(session, Hold), actions(session)) == (0, [])


# --- capturing and releasing ----------------------------------------------------------------------


def test_capturing_less_than_held_charges_that_and_gives_the_rest_back(session):
    user = UserFactory(balance="10.00")
    placed = hold(session, user, amount="5.00", params={"seconds": 5})
    captured = capture_hold(session, hold_id=placed.hold.id, amount="3.20", ctx=INTERNAL)
    assert (captured.balance, captured.available, captured.replayed) == (Decimal("6.80"), Decimal("6.80"), False)
    h = captured.hold
    assert (h.status, h.captured_amount, h.released_amount) == ("captured", Decimal("3.20"), Decimal("1.80"))
    usage = session.get(UsageLog, h.usage_log_id)
    assert (usage.amount, usage.request_id, usage.model, usage.params, usage.balance_after) == (
        Decimal("3.2000"),
        "job-1",
        "motion-video-1",
        {"seconds": 5},
        Decimal("6.8000"),
    )
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.usage_log_id == usage.id)).one()
    assert (entry.kind, entry.amount) == ("usage", Decimal("-3.2000"))
    assert account(session, user) == (Decimal("6.8000"), Decimal("0.0000"))
    assert actions(session) == ["hold.placed", "hold.captured"]
    assert list(find_breaches(session)) == []


def test_the_same_capture_again_answers_the_same_and_another_amount_is_refused(session):
    user = UserFactory(balance="10.00")
    placed = hold(session, user)
    first = capture_hold(session, hold_id=placed.hold.id, amount="4.00", ctx=INTERNAL)
    charge(session, user, "1.00")  # the account moves on; a replay still answers the first answer
    again = capture_hold(session, hold_id=placed.hold.id, amount="4.0000", ctx=INTERNAL)
    assert (again.replayed, again.balance, again.available) == (True, first.balance, first.available)
    assert again.hold.usage_log_id == first.hold.usage_log_id
    with pytest.raises(HoldSettled):
        capture_hold(session, hold_id=placed.hold.id, amount="3.00", ctx=INTERNAL)
    with pytest.raises(HoldSettled):
        release_hold(session, hold_id=placed.hold.id, ctx=INTERNAL)
    assert count_rows(session, UsageLog) == 2


def test_a_capture_above_the_hold_is_refused_and_changes_nothing(session):
    user = UserFactory(balance="10.00")
    placed = hold(session, user)
    with pytest.raises(CaptureExceedsHold):
        capture_hold(session, hold_id=placed.hold.id, amount="4.01", ctx=INTERNAL)
    assert view_hold(session, hold_id=placed.hold.id, now=datetime.now(UTC)).status == "active"
    assert account(session, user) == (Decimal("10.0000"), Decimal("4.0000"))


def test_releasing_gives_it_all_back_once_and_again_answers_the_same(session):
    user = UserFactory(balance="10.00")
    placed = hold(session, user)
    released = release_hold(session, hold_id=placed.hold.id, ctx=INTERNAL)
    assert (released.hold.status, released.hold.released_amount) == ("released", Decimal("4.00"))
    assert (released.balance, released.available) == (Decimal("10.00"), Decimal("10.00"))
    again = release_hold(session, hold_id=placed.hold.id, ctx=INTERNAL)
    assert (again.replayed, again.available) == (True, Decimal("10.00"))
    with pytest.raises(HoldSettled):
        capture_hold(session, hold_id=placed.hold.id, amount="1.00", ctx=INTERNAL)
    assert actions(session) == ["hold.placed", "hold.released"]
    assert account(session, user) == (Decimal("10.0000"), Decimal("0.0000"))


@pytest.mark.parametrize("hold_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", None, 7])
def test_an_unknown_hold_is_not_found(session, hold_id):
    with pytest.raises(HoldNotFound):
        release_hold(session, hold_id=hold_id, ctx=INTERNAL)
    with pytest.raises(HoldNotFound):
        view_hold(session, hold_id=hold_id, now=datetime.now(UTC))


# --- expiry ---------------------------------------------------------------------------------------


def test_a_hold_past_its_expiry_is_expired_at_once_everywhere(session):
    user = UserFactory(balance="10.00")
    placed = hold(session, user, amount="9.00", ttl_seconds=60, ctx=INTERNAL.at(LONG_AGO))
    assert (
        view_hold(session, hold_id=placed.hold.id, now=datetime.now(UTC)).status == "expired"
    )  # before anything writes it
    assert money_on_hold(session, user.id, now=datetime.now(UTC)).held == 0
    assert charge(session, user, "9.50").balance == Decimal("0.5000")  # its money is available again
    with pytest.raises(HoldSettled):
        capture_hold(session, hold_id=placed.hold.id, amount="1.00", ctx=INTERNAL)
    h = session.get(Hold, placed.hold.id, populate_existing=True)
    assert (h.status, h.released_amount) == ("expired", Decimal("9.00"))
    assert account(session, user) == (Decimal("0.5000"), Decimal("0.0000"))
    assert actions(session) == ["hold.placed", "hold.expired"]
    assert list(find_breaches(session)) == []


def test_the_expiry_job_expires_every_past_due_hold_once(session):
    users = [UserFactory(balance="5.00") for _ in range(3)]
    hold(session, users[0], request_id="fresh", amount="1.00")  # not due
    for i, user in enumerate(users):
        hold(session, user, request_id=f"old-{i}", amount="1.00", ttl_seconds=60, ctx=INTERNAL.at(LONG_AGO))
    assert [w.subject.split()[0] for w in find_warnings(session)] == ["hold", "hold", "hold"]
    assert expire_holds(session, SYSTEM) == 3
    assert expire_holds(session, SYSTEM) == 0
    written = session.scalars(select(Hold).where(Hold.status == "expired")).all()
    assert all(h.settled_at == h.expires_at for h in written)  # expired at that instant, not when written
    assert [account(session, u)[1] for u in users] == [Decimal("1.0000"), Decimal("0.0000"), Decimal("0.0000")]
    assert actions(session).count("hold.expired") == 3
    assert list(find_breaches(session)) == [] and list(find_warnings(session)) == []


def test_verify_finds_a_held_amount_that_the_holds_do_not_explain(session):
    user = UserFactory(balance="10.00")
    hold(session, user)
    session.execute(text("UPDATE billing_accounts SET held = 3 WHERE user_id = :u"), {"u": user.id})
    assert [b.invariant for b in find_breaches(session)] == ["7 held equals the active holds and the pending refunds"]
