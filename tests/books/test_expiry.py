"""The expiry job's side of credit lots (books.expiry, SPEC 20): every account's due lots written,
under its lock, once; credit.expiring told once a lot, when it enters its last days."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from ledger.models import AuditLog, CreditLot, Event, LedgerEntry
from ledger.services.books.accounts import adjust_balance
from ledger.services.books.expiry import expire_credits, notify_expiring
from ledger.services.books.holds import place_hold
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL, SYSTEM
from tests.factories import UserFactory
from tests.helpers import balance_of

T0 = datetime(2027, 1, 10, 4, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def gift(session, user, amount, expires_at, at=T0):
    return adjust_balance(
        session, user_id=user.id, amount=Decimal(amount), memo="gift", ctx=SYSTEM.at(at), expires_at=expires_at
    )


def kept_for_a_hold(session, user) -> None:
    """A gift of 5.00 expiring at T0 + 1 day under a hold of 3.00 placed before (for a day), its
    expiry written by the job: 2.00 expired, 3.00 kept for the hold."""
    gift(session, user, "5.00", expires_at=T0 + DAY)
    place_hold(
        session, user_id=user.id, amount="3.00", model="m", request_id="job", ttl_seconds=86400,
        ctx=INTERNAL.at(T0 + DAY / 2),
    )  # fmt: skip
    expire_credits(session, SYSTEM.at(T0 + DAY))


def test_the_job_writes_every_due_lot_once_and_leaves_the_others(session):
    people = [UserFactory(balance="1.00") for _ in range(3)]
    for person in people[:2]:
        gift(session, person, "2.00", expires_at=T0 + DAY)
    gift(session, people[2], "2.00", expires_at=T0 + 3 * DAY)

    assert expire_credits(session, SYSTEM.at(T0 + DAY)).accounts == 2
    assert [balance_of(session, p) for p in people] == [Decimal("1.0000"), Decimal("1.0000"), Decimal("3.0000")]
    assert expire_credits(session, SYSTEM.at(T0 + DAY)).accounts == 0  # nothing left to write
    assert session.scalar(select(func.count()).where(LedgerEntry.kind == "expiry")) == 2
    assert session.scalar(select(func.count()).where(Event.type == "credit.expired")) == 2
    assert session.scalar(select(func.count()).where(AuditLog.action == "credit.expired")) == 2
    assert list(find_breaches(session)) == []


def test_a_kept_part_is_looked_at_again_but_written_once_its_hold_settles(session):
    user = UserFactory()
    kept_for_a_hold(session, user)
    assert balance_of(session, user) == Decimal("3.0000")  # 2.00 expired, 3.00 kept for the hold
    expire_credits(session, SYSTEM.at(T0 + DAY + timedelta(minutes=1)))
    assert balance_of(session, user) == Decimal("3.0000")
    expire_credits(session, SYSTEM.at(T0 + 2 * DAY))  # the hold expired at T0 + 1.5 days: the rest goes
    assert balance_of(session, user) == Decimal("0.0000")
    amounts = session.scalars(select(LedgerEntry.amount).where(LedgerEntry.kind == "expiry").order_by(LedgerEntry.id))
    assert list(amounts) == [Decimal("-2.0000"), Decimal("-3.0000")]
    assert list(find_breaches(session)) == []


def test_credit_expiring_is_told_once_a_lot_when_it_enters_its_last_days(session):
    user = UserFactory()
    soon = gift(session, user, "2.00", expires_at=T0 + 3 * DAY)  # inside the 7-day window at once
    later = gift(session, user, "4.00", expires_at=T0 + 10 * DAY)
    assert notify_expiring(session, SYSTEM.at(T0)) == 1
    assert notify_expiring(session, SYSTEM.at(T0 + timedelta(minutes=1))) == 0
    assert notify_expiring(session, SYSTEM.at(T0 + 3 * DAY)) == 1  # `later` entered its last 7 days
    events = session.scalars(select(Event).where(Event.type == "credit.expiring").order_by(Event.created_at)).all()
    lots = {
        lot.ledger_entry_id: lot.id for lot in session.scalars(select(CreditLot).where(CreditLot.user_id == user.id))
    }
    assert [(e.data["lot_id"], e.data["amount"], e.data["category"]) for e in events] == [
        (lots[soon.id], "2.00", "granted"),
        (lots[later.id], "4.00", "granted"),
    ]
    assert events[0].data["expires_at"] == (T0 + 3 * DAY).isoformat()


def test_the_hold_expiry_job_lets_what_its_holds_kept_expire(session):
    from ledger.services.books.holds import expire_holds

    user = UserFactory()
    kept_for_a_hold(session, user)
    assert balance_of(session, user) == Decimal("3.0000")  # kept for the hold
    assert expire_holds(session, SYSTEM.at(T0 + 2 * DAY)) == 1
    assert balance_of(session, user) == Decimal("0.0000")  # the hold expired: what it kept went with it
    assert list(find_breaches(session)) == []


def test_verify_warns_of_a_lot_whose_expiry_nobody_wrote(session):
    from ledger.services.books.invariants import find_warnings

    user = UserFactory()
    long_ago = datetime.now(UTC) - timedelta(days=3)
    gift(session, user, "2.00", expires_at=long_ago + DAY, at=long_ago)
    warned = [w for w in find_warnings(session) if w.invariant.startswith("credit lots past their expiry")]
    assert [w.detail.split(",")[0] for w in warned] == ["2.0000 left"]
    expire_credits(session, SYSTEM)
    assert not [w for w in find_warnings(session) if w.invariant.startswith("credit lots past their expiry")]
