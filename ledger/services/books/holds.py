"""Holds for long jobs (SPEC 11): money set aside before a job runs, then captured (what the job
cost) or released (it failed), or expired (nobody said): exactly once.

Every operation is one transaction that locks the billing account first (which expires the
account's past-due holds, `accounts.lock_account`), then the hold row. `held` on the account is the
sum of its active holds and pending refunds (invariant 7); a capture is a charge of the captured
amount, written by the charge engine (books.engine) as a deduct is: one usage log with its ledger
entry (invariant 8). Replays answer what the first call answered.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ledger import metrics, validation
from ledger.db import atomic, get_by_id, lock
from ledger.errors import CaptureExceedsHold, HoldNotFound, HoldSettled
from ledger.models import BillingAccount, Hold, HoldStatus, Refund, RefundStatus, UsageLog, User
from ledger.money import MAX_CHARGE, STORAGE_PLACES, parse_amount, to_api
from ledger.services.audit import record_audit
from ledger.services.books.accounts import (
    ChargeRequest,
    Funds,
    expire_due,
    funds,
    lock_account,
    refuse_if_disabled,
    short_of,
)
from ledger.services.books.engine import Account, Entry, Usage, decide, write
from ledger.services.books.limits import note_reached, over_limit, site_zone, spending
from ledger.services.books.lots import expire_due_lots, has_due_lots
from ledger.services.books.low_balance import note_crossing, site_threshold, threshold
from ledger.services.context import Context

TTL_DEFAULT = 3600
TTL_MIN, TTL_MAX = 60, 86_400
EXPIRY_BATCH = 500  # accounts per run of the expiry job


@dataclass(frozen=True)
class HoldAnswer:
    """A hold as an operation leaves it, with the account's balance and available amount then."""

    hold: Hold
    balance: Decimal
    available: Decimal
    now: datetime  # the time of the operation: what the hold's status is judged at
    replayed: bool = False


@dataclass(frozen=True)
class HoldView:
    """A hold as it is at `now`: an active hold past its expiry is expired from that instant,
    even before the expiry job writes it."""

    hold: Hold
    status: HoldStatus
    captured_amount: Decimal | None
    released_amount: Decimal | None
    settled_at: datetime | None

    @classmethod
    def of(cls, hold: Hold, now: datetime) -> HoldView:
        if hold.status is HoldStatus.ACTIVE and hold.expires_at <= now:
            return cls(hold, HoldStatus.EXPIRED, None, hold.amount, hold.expires_at)
        return cls(hold, hold.status, hold.captured_amount, hold.released_amount, hold.settled_at)


@dataclass(frozen=True)
class OnHold:
    """A person's money set aside now (`accounts.funds`): each active hold not yet past its expiry
    (the newest first, at most a page of them), and what pending refunds keep (SPEC 15)."""

    funds: Funds  # the balance, held and available amount, read together
    holds: list[Hold]
    refunding: Decimal

    @property
    def held(self) -> Decimal:
        return self.funds.held


def money_on_hold(session: Session, user_id: uuid.UUID, *, now: datetime, limit: int = 20) -> OnHold:
    """What is set aside from the person's balance at `now` and why (read only: a hold past its
    expiry counts no more, even before the expiry job writes it)."""
    live = (Hold.user_id == user_id, Hold.status == HoldStatus.ACTIVE, Hold.expires_at > now)
    holds = list(session.scalars(select(Hold).where(*live).order_by(Hold.created_at.desc(), Hold.id).limit(limit)))
    refunding = session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.user_id == user_id, Refund.status == RefundStatus.PENDING
        )
    )
    return OnHold(funds(session, user_id, now), holds, Decimal(refunding))


def place_hold(
    session: Session,
    *,
    user_id: object,
    amount: object,
    model: object,
    request_id: object,
    params: object = None,
    ttl_seconds: object = None,
    ctx: Context,
) -> HoldAnswer:
    """Set `amount` aside for a job of `request_id`, for `ttl_seconds` (60-86400, default 3600).

    Raises InvalidRequest, UserNotFound, RequestIdConflict (the request id names a charge, or
    another hold), InsufficientBalance (the available amount is short; audited). A repeat with the
    same request id, amount and model answers the hold as it is now, `replayed=True`.
    """
    req = ChargeRequest.parse(user_id, amount, model, request_id, params)
    ttl = (
        TTL_DEFAULT
        if ttl_seconds is None
        else validation.whole_number(ttl_seconds, "ttl_seconds", minimum=TTL_MIN, maximum=TTL_MAX)
    )
    with atomic(session):
        return set_aside(session, req, ttl=ttl, ctx=ctx)


def set_aside(
    session: Session,
    req: ChargeRequest,
    *,
    ttl: int,
    ctx: Context,
) -> HoldAnswer:
    """`place_hold` inside the caller's unit of work, for a checked request (the console's video
    jobs place a hold and queue the job in one transaction). The context's clock is read once the
    account is locked, as in every hold operation. A hold that takes the available
    amount below the person's threshold (their own, else the site's) adds a balance.low event."""
    account = lock_account(session, req.user_id, ctx)
    disabled_at, own = session.execute(
        select(User.disabled_at, User.low_balance_threshold).where(User.id == req.user_id)
    ).one()
    now = ctx.now()
    previous = session.scalar(select(Hold).where(Hold.user_id == req.user_id, Hold.request_id == req.request_id))
    # A charge with this request id makes it a conflict; once the hold is there, a usage log with
    # its request id is the hold's own capture, and placing it again is a replay.
    charged = select(UsageLog.id).where(UsageLog.user_id == req.user_id, UsageLog.request_id == req.request_id)
    taken = previous is None and session.scalar(charged) is not None
    figures = Account(
        req.user_id, account.balance, account.held, disabled_at is not None, threshold(own, site_threshold(ctx))
    )
    if previous is None and disabled_at is None:
        figures.spending = spending(session, req.user_id, now, site_zone(ctx))
    decision = decide(req, figures, previous, taken=taken, hold=True)
    if decision.status == "insufficient_balance":
        raise short_of(account, req, "hold.insufficient_balance", ctx)
    if decision.status == "spending_limit_reached":
        raise over_limit(decision.error, req, figures, "hold.spending_limit_reached", ctx)
    if decision.error is not None:
        raise decision.error
    if previous is not None:  # replayed
        metrics.count_on_commit(session, metrics.HOLDS.labels("replayed").inc)
        return HoldAnswer(previous, account.balance, account.available, now, replayed=True)
    hold = Hold(
        id=uuid.uuid4(),
        user_id=req.user_id,
        amount=req.amount,
        status=HoldStatus.ACTIVE,
        request_id=req.request_id,
        model=req.model,
        params=req.params,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    session.add(hold)
    before = account.available
    account.held += req.amount
    note_crossing(
        session,
        user_id=req.user_id,
        limit=threshold(own, site_threshold(ctx)),
        before=before,
        after=account.available,
        balance=account.balance,
        hold_id=hold.id,
        amount=req.amount,
    )
    details = {**req.described(), "hold_id": str(hold.id), "ttl_seconds": ttl, "available": to_api(account.available)}
    record_audit(session, "hold.placed", ctx=ctx, user_id=req.user_id, details=details)
    note_reached(session, figures.spending)
    metrics.count_on_commit(session, metrics.HOLDS.labels("placed").inc)
    return HoldAnswer(hold, account.balance, account.available, now)


def capture_hold(session: Session, *, hold_id: object, amount: object, ctx: Context) -> HoldAnswer:
    """Settle an active hold by charging `amount` of it (0 < amount <= the hold); the rest is released.

    Writes the usage log (the hold's request id, model and params) and its ledger entry. The same
    capture again answers the same, `replayed=True`. Raises HoldNotFound, HoldSettled (released,
    expired, or captured with another amount), InvalidRequest, CaptureExceedsHold.
    """
    value = parse_amount(amount, places=STORAGE_PLACES, maximum=MAX_CHARGE)
    with atomic(session):
        return capture(session, hold_id, value, ctx=ctx)


def capture(session: Session, hold_id: object, value: Decimal, *, ctx: Context) -> HoldAnswer:
    """`capture_hold` inside the caller's unit of work, for a checked amount."""
    account, hold, now = _lock(session, hold_id, ctx)
    refuse_if_disabled(session, hold.user_id)  # a capture is a charge; a release stays possible
    if hold.status is HoldStatus.CAPTURED and hold.captured_amount == value:
        return _settled_answer(hold, now, replayed=True)
    if hold.status is not HoldStatus.ACTIVE:
        raise HoldSettled(hold_status=hold.status.value)
    if value > hold.amount:
        raise CaptureExceedsHold(field="amount", amount=value, held=hold.amount)
    usage = Usage(
        id=uuid.uuid4(),
        user_id=hold.user_id,
        amount=value,
        model=hold.model,
        params=hold.params,
        request_id=hold.request_id,
        balance_after=account.balance - value,
    )
    account.held -= hold.amount
    session.flush()  # the hold's money is free before the charge takes its part (held <= balance)
    released = {"hold_id": str(hold.id), "released": to_api(hold.amount - value)}
    # a capture may spend the part of an expired lot that its hold kept (SPEC 20)
    captured = Entry(usage, action="hold.captured", details=released, guarded=False)
    write(session, [captured], ctx, now, kept_since=hold.created_at)
    set_committed_value(account, "balance", usage.balance_after)  # as the engine wrote it
    hold.settle(HoldStatus.CAPTURED, now)
    hold.captured_amount, hold.usage_log_id = value, usage.id
    _note_settlement(session, hold, account, now)
    return _settled_answer(hold, now)


def release_hold(session: Session, *, hold_id: object, ctx: Context) -> HoldAnswer:
    """Settle an active hold by giving all of it back (the job failed). Again: the same answer,
    `replayed=True`. Raises HoldNotFound, HoldSettled (captured or expired)."""
    with atomic(session):
        return release(session, hold_id, ctx=ctx)


def release(session: Session, hold_id: object, *, ctx: Context) -> HoldAnswer:
    """`release_hold` inside the caller's unit of work."""
    account, hold, now = _lock(session, hold_id, ctx)
    if hold.status is HoldStatus.RELEASED:
        return _settled_answer(hold, now, replayed=True)
    if hold.status is not HoldStatus.ACTIVE:
        raise HoldSettled(hold_status=hold.status.value)
    account.held -= hold.amount
    hold.settle(HoldStatus.RELEASED, now)
    _note_settlement(session, hold, account, now)
    details = {"hold_id": str(hold.id), "amount": to_api(hold.amount), "request_id": hold.request_id}
    record_audit(session, "hold.released", ctx=ctx, user_id=hold.user_id, details=details)
    return _settled_answer(hold, now)


def expire_holds(session: Session, ctx: Context) -> int:
    """The expiry job: expire every active hold past its expiry (at the context's time), one account
    (one transaction) at a time. Returns how many holds it expired."""
    now = ctx.now()
    expired = 0
    while True:
        due = session.scalars(
            select(Hold.user_id)
            .where(Hold.status == HoldStatus.ACTIVE, Hold.expires_at <= now)
            .distinct()
            .limit(EXPIRY_BATCH)
        ).all()
        session.commit()
        for user_id in due:
            with atomic(session):
                account = lock(session, BillingAccount, BillingAccount.user_id == user_id)
                if account:  # its lots past their expiry too, in time order; what holds kept of them goes
                    expired += len(expire_due(session, account, now, lots_due=has_due_lots(session, user_id, now)))
        if len(due) < EXPIRY_BATCH:
            return expired


def view_hold(session: Session, *, hold_id: object, now: datetime) -> HoldView:
    """A hold as it is at `now` (read only); HoldNotFound for an unknown or malformed id."""
    return HoldView.of(get_by_id(session, Hold, hold_id, "hold_id", HoldNotFound()), now)


def _lock(session: Session, hold_id: object, ctx: Context) -> tuple[BillingAccount, Hold, datetime]:
    """The hold's account, then the hold, locked in that order (the order every hold change takes),
    and the time of the operation: read once the locks are ours, so that a capture that waited for
    the account cannot settle a hold that expired meanwhile."""
    wanted = validation.uuid_of(hold_id, "hold_id", error=HoldNotFound())
    user_id = session.scalar(select(Hold.user_id).where(Hold.id == wanted))
    if user_id is None:
        raise HoldNotFound()
    account = lock_account(session, user_id, ctx)
    hold = lock(session, Hold, Hold.id == wanted)
    assert hold is not None  # holds are never deleted
    return account, hold, ctx.now()


def _note_settlement(session: Session, hold: Hold, account: BillingAccount, now: datetime) -> None:
    """What a hold kept of expired lots expires once it settles (SPEC 20); keep the account's
    figures on the hold, so that a repeated capture or release answers the same; count the
    settlement in the metrics once it commits."""
    session.flush()
    if has_due_lots(session, account.user_id, now):
        expire_due_lots(session, account, now)
    hold.settled_balance, hold.settled_available = account.balance, account.available
    metrics.count_on_commit(session, metrics.HOLDS.labels(hold.status.value).inc)


def _settled_answer(hold: Hold, now: datetime, replayed: bool = False) -> HoldAnswer:
    assert hold.settled_balance is not None and hold.settled_available is not None
    return HoldAnswer(hold, hold.settled_balance, hold.settled_available, now, replayed)
