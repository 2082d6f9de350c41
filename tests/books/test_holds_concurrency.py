"""Holds under contention: real threads, one connection each, committed rows (SPEC 11, invariants 7-8)."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.errors import HoldSettled, InsufficientBalance
from ledger.models import BillingAccount, Hold, HoldStatus, UsageLog
from ledger.services.books.charges import charge_usage
from ledger.services.books.holds import capture_hold, expire_holds, place_hold, release_hold, view_hold
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL, SYSTEM
from tests.helpers import funded_user, run_together, wait_until, wait_until_waiting_on_a_lock

pytestmark = pytest.mark.committed


def test_twenty_concurrent_captures_and_releases_settle_a_hold_once(committed):
    user = funded_user(committed, "10.00")
    with committed.session() as session:
        hold_id = place_hold(session, user_id=user.id, amount="5.00", model="m", request_id="job", ctx=INTERNAL).hold.id

    def settle(i):
        with committed.session() as session:
            if i % 2:
                return capture_hold(session, hold_id=hold_id, amount="2.00", ctx=INTERNAL)
            return release_hold(session, hold_id=hold_id, ctx=INTERNAL)

    results = run_together(20, settle)

    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, HoldSettled)]
    assert unexpected == []
    answers = [r for r in results if not isinstance(r, Exception)]
    assert len([a for a in answers if not a.replayed]) == 1  # one settlement; the rest repeat it or are refused
    winner = answers[0].hold.status
    assert all(a.hold.status == winner for a in answers)
    assert len([r for r in results if isinstance(r, HoldSettled)]) == 20 - len(answers)
    with committed.session() as session:
        hold = session.get(Hold, hold_id)
        account = session.get(BillingAccount, user.id)
        usages = session.scalar(select(func.count()).select_from(UsageLog))
        if winner == HoldStatus.CAPTURED:
            assert (account.balance, account.held, usages) == (Decimal("8.0000"), Decimal("0.0000"), 1)
        else:
            assert (account.balance, account.held, usages) == (Decimal("10.0000"), Decimal("0.0000"), 0)
        assert hold.status == winner
        assert list(find_breaches(session)) == []


def test_thirty_concurrent_holds_never_set_aside_more_than_the_balance(committed):
    user = funded_user(committed, "10.00")

    def place(i):
        with committed.session() as session:
            return place_hold(session, user_id=user.id, amount="1.00", model="m", request_id=f"j{i}", ctx=INTERNAL)

    results = run_together(30, place)

    refused = [r for r in results if isinstance(r, InsufficientBalance)]
    placed = [r for r in results if not isinstance(r, Exception)]
    assert (len(placed), len(refused)) == (10, 20), [r for r in results if isinstance(r, Exception)][:3]
    with committed.session() as session:
        account = session.get(BillingAccount, user.id)
        assert (account.balance, account.held) == (Decimal("10.0000"), Decimal("10.0000"))
        assert list(find_breaches(session)) == []


def test_holds_and_deducts_racing_for_one_balance_spend_it_exactly(committed):
    user = funded_user(committed, "15.00")

    def spend(i):
        with committed.session() as session:
            if i % 2:
                return place_hold(session, user_id=user.id, amount="1.00", model="m", request_id=f"h{i}", ctx=INTERNAL)
            return charge_usage(session, user_id=user.id, amount="1.00", model="m", request_id=f"d{i}", ctx=INTERNAL)

    results = run_together(40, spend)

    assert len([r for r in results if not isinstance(r, Exception)]) == 15
    assert len([r for r in results if isinstance(r, InsufficientBalance)]) == 25
    with committed.session() as session:
        account = session.get(BillingAccount, user.id)
        assert account.balance - account.held == Decimal("0.0000")
        assert list(find_breaches(session)) == []


def test_a_capture_that_waited_for_the_account_past_the_expiry_is_refused(committed, engine):
    user = funded_user(committed, "10.00")
    with committed.session() as session:
        soon = datetime.now(UTC) - timedelta(seconds=59)  # a 60 s hold: due in one second
        hold_id = place_hold(
            session,
            user_id=user.id,
            amount="5.00",
            model="m",
            request_id="job",
            ttl_seconds=60,
            ctx=INTERNAL.at(soon),
        ).hold.id
    with engine.connect() as blocker:  # another transaction keeps the account a little longer
        blocker.execute(select(BillingAccount).where(BillingAccount.user_id == user.id).with_for_update())

        def capture():
            with committed.session() as session:
                return capture_hold(session, hold_id=hold_id, amount="1.00", ctx=INTERNAL)

        pending = ThreadPoolExecutor(1).submit(capture)
        wait_until_waiting_on_a_lock(engine)  # the capture waits for the account ...
        wait_until(lambda: datetime.now(UTC) > soon + timedelta(seconds=60), what="the hold's expiry")  # ... past it
        blocker.rollback()
        outcome = pending.exception(timeout=10)
    assert isinstance(outcome, HoldSettled)
    with committed.session() as session:
        assert view_hold(session, hold_id=hold_id, now=datetime.now(UTC)).status == "expired"
        assert expire_holds(session, SYSTEM) == 1  # the refusal wrote nothing; the expiry job writes the expiry
        assert session.get(BillingAccount, user.id).held == Decimal("0.0000")
        assert session.scalar(select(func.count()).select_from(UsageLog)) == 0
