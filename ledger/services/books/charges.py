"""The single charge (SPEC 5), on the hot path: `charge_usage`, through the one charge engine
(books.engine), in two statements and a commit. The first locks the billing account and, in the
same round trip, finds a replay of the request id (a usage log) or a hold that took it; the engine
decides, and its writer writes the usage log, the balance, the ledger entry and the audit row
together. Both statements are compiled once and run on the DBAPI connection (`engine.Prepared`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, exists, select
from sqlalchemy.orm import Session

from ledger import metrics
from ledger.db import atomic, retry_on_disconnect
from ledger.errors import UserNotFound
from ledger.services.books.accounts import ChargeRequest, insufficient
from ledger.services.books.engine import (
    ACCOUNTS,
    HOLDS,
    LOTS,
    USAGE,
    USERS,
    Account,
    Charge,
    Entry,
    Prepared,
    Usage,
    decide,
    note_low,
    take,
    write,
)
from ledger.services.books.limits import has_limits, note_reached, over_limit, site_zone, spending
from ledger.services.books.lots import drawn_by_usage, next_expiry
from ledger.services.books.low_balance import site_threshold, threshold
from ledger.services.context import Context


@metrics.counting_refusals(metrics.CHARGES)
@retry_on_disconnect
def charge_usage(
    session: Session,
    *,
    user_id: object,
    amount: object,
    model: object,
    request_id: object,
    params: object = None,
    ctx: Context,
) -> Charge:
    """Charge a user for one use of a paid feature, at most once per (user, request_id).

    Takes the raw input (ChargeRequest.parse checks it). One transaction: locks the billing
    account; if request_id was charged before, returns that charge (`replayed=True`) or raises
    RequestIdConflict when amount or model differ (or a hold has that request id); if the available
    amount (balance - held) is short, raises InsufficientBalance and keeps only its audit row; else
    lowers the balance and writes the usage log, its ledger entry and an audit row, and a
    balance.low event when the charge takes the available amount below the person's threshold
    (their own, else the site's, of `ctx`'s settings). Raises InvalidRequest, UserNotFound,
    AccountDisabled.
    """
    req = ChargeRequest.parse(user_id, amount, model, request_id, params)
    with atomic(session):
        return charge_within(session, req, ctx)


def charge_within(session: Session, req: ChargeRequest, ctx: Context) -> Charge:
    """`charge_usage`'s charge inside the caller's unit of work (a plan's price, with the plan lot
    it buys: SPEC 21); the same locks, decision and writes, raising the same refusals."""
    asked = {"p_user_id": req.user_id, "p_request_id": req.request_id}
    connection = session.connection()
    found = LOCK_AND_LOOK.one_or_none(connection, asked)
    if found is None:
        raise UserNotFound()
    now = ctx.now()  # the charge's instant, once the lock is ours: what expired by it counts no more
    for _ in range(2):  # again once, when the request id was taken while we waited for the lock
        account = Account(
            req.user_id,
            found.balance,
            found.held,
            found.disabled,
            threshold(found.low_balance_threshold, site_threshold(ctx)),
            found.next_expiry is not None and found.next_expiry <= now,
        )
        if not account.disabled:
            account.expire_past_due(session, now)
            if found.has_limits:
                account.spending = spending(session, req.user_id, now, site_zone(ctx))
        decision = decide(req, account, _first(req, found), found.hold_taken)
        if decision.status == "insufficient_balance":
            raise insufficient(req, account.balance, account.available, "usage.insufficient_balance", ctx)
        if decision.status == "spending_limit_reached":
            raise over_limit(decision.error, req, account, "usage.spending_limit_reached", ctx)
        if decision.error is not None:
            raise decision.error
        if decision.usage is not None:  # replayed
            metrics.count_charges(session, "replayed", Decimal(0))
            decision.usage.drawn = drawn_by_usage(session, [decision.usage.id])[decision.usage.id]
            return Charge(usage=decision.usage, balance=decision.usage.balance_after, replayed=True)
        usage = take(req, account)
        if write(session, [Entry(usage)], ctx, now):
            note_low(session, account, usage)
            note_reached(session, account.spending)
            metrics.count_charges(session, "charged", usage.amount)
            return Charge(usage=usage, balance=usage.balance_after, replayed=False)
        found = LOCK_AND_LOOK.one_or_none(connection, asked)  # a new snapshot: it sees who took it
    raise AssertionError("a request id taken, then not found")  # pragma: no cover


def _first(req: ChargeRequest, found: Any) -> Usage | None:
    """The usage log the lookup found for the request id, if any."""
    if found.usage_id is None:
        return None
    return Usage(
        id=found.usage_id,
        user_id=req.user_id,
        amount=found.amount,
        model=found.model,
        params=found.params,
        request_id=req.request_id,
        balance_after=found.balance_after,
        created_at=found.created_at,
    )


def _param(name: str, column: Any) -> Any:
    """A bound parameter typed like `column`."""
    return bindparam(f"p_{name}", type_=column.type)


def _lock_and_look() -> Any:
    """The account locked, with the usage log of this request id if any, and whether a hold has it.

    Under READ COMMITTED the locked row is read as the last lock holder left it, but the joined
    rows as the statement's snapshot saw them: a usage log or hold committed by the transaction we
    waited for is not seen here. The engine's writer guards against that in a statement of its own.
    """
    user_id, request_id = _param("user_id", ACCOUNTS.c.user_id), _param("request_id", USAGE.c.request_id)
    taken = exists().where(HOLDS.c.user_id == ACCOUNTS.c.user_id, HOLDS.c.request_id == request_id)
    joined = ACCOUNTS.join(USERS, USERS.c.id == ACCOUNTS.c.user_id).outerjoin(
        USAGE, and_(USAGE.c.user_id == ACCOUNTS.c.user_id, USAGE.c.request_id == request_id)
    )
    return (
        select(
            ACCOUNTS.c.balance,
            ACCOUNTS.c.held,
            USERS.c.disabled_at.is_not(None).label("disabled"),
            USERS.c.low_balance_threshold,
            USAGE.c.id.label("usage_id"),
            USAGE.c.amount,
            USAGE.c.model,
            USAGE.c.params,
            USAGE.c.balance_after,
            USAGE.c.created_at,
            taken.label("hold_taken"),
            next_expiry(LOTS.c.user_id == ACCOUNTS.c.user_id).label("next_expiry"),
            has_limits(ACCOUNTS.c.user_id).label("has_limits"),
        )
        .select_from(joined)
        .where(ACCOUNTS.c.user_id == user_id)
        .with_for_update(of=ACCOUNTS)
    )


LOCK_AND_LOOK = Prepared.of(_lock_and_look())
