"""The ledger core: accounts, credits, holds' bookkeeping of `held`, and the ledger history a person
reads. Every charge (a deduct, a batch item, a hold's capture) is decided and written by the one
charge engine (books.engine); credits and admin debits go through `post`.

A balance change locks the billing account row (`SELECT ... FOR UPDATE`), moves the balance, and
appends the ledger entry, its source row and an audit row in one transaction (SPEC 4.5).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from ledger import metrics, validation
from ledger.db import atomic, in_unit_of_work, lock
from ledger.errors import AccountDisabled, InsufficientBalance, InsufficientBalanceToHold, InvalidRequest, UserNotFound
from ledger.models import (
    BillingAccount,
    CreditLot,
    EventType,
    Hold,
    HoldStatus,
    LedgerEntry,
    LedgerKind,
    UsageLog,
    User,
)
from ledger.money import MAX_CHARGE, STORAGE_PLACES, parse_amount, to_api
from ledger.services.audit import record_audit, refusal
from ledger.services.books.lots import (
    SPENDING_ORDER,
    ActiveHold,
    DueLot,
    add_lot,
    append_entry,
    draw,
    expire_due_lots,
    expiry_losses,
    grant_expiry,
    has_due_lots,
    unwritten_expiries,
)
from ledger.services.context import SYSTEM, Context
from ledger.services.events import emit
from ledger.services.paging import Page, newest_first

MODEL_MAX_LENGTH = 100
REQUEST_ID_MAX_LENGTH = 128
PARAMS_MAX_BYTES = 16 * 1024


@dataclass(frozen=True)
class ChargeRequest:
    """A charge's input, checked: what `charge_usage` acts on."""

    user_id: uuid.UUID
    amount: Decimal
    model: str
    request_id: str
    params: dict[str, Any]

    @classmethod
    def parse(cls, user_id: object, amount: object, model: object, request_id: object, params: object) -> ChargeRequest:
        """Check every field of a charge; raise InvalidRequest naming the first bad one."""
        if isinstance(amount, Decimal):  # from our own code (the console's quote), written exactly
            amount = format(amount, "f")
        return cls(
            user_id=validation.uuid_of(user_id, "user_id"),
            amount=parse_amount(amount, places=STORAGE_PLACES, maximum=MAX_CHARGE),
            model=validation.text(model, "model", max_length=MODEL_MAX_LENGTH),
            request_id=validation.text(request_id, "request_id", max_length=REQUEST_ID_MAX_LENGTH, strip=False),
            params=validation.json_object(params, "params", max_bytes=PARAMS_MAX_BYTES),
        )

    def described(self) -> dict[str, str]:
        """The charge as its audit rows tell it."""
        return {"amount": to_api(self.amount), "model": self.model, "request_id": self.request_id}


def lock_account(session: Session, user_id: uuid.UUID, ctx: Context) -> BillingAccount:
    """Lock the user's billing account row for the rest of the transaction; raise UserNotFound.

    The account's holds and lots past their expiry (at the context's time once the lock is ours)
    are expired first (SPEC 11, 20: expired from that instant, everywhere), so that the balance,
    `held` and the available amount never count them.
    """
    account = lock(session, BillingAccount, BillingAccount.user_id == user_id)
    if account is None:
        raise UserNotFound()
    expire_due(session, account, ctx.now(), lots_due=has_due_lots(session, user_id, ctx.now()))
    return account


def expire_due(session: Session, account: BillingAccount, now: datetime, *, lots_due: bool) -> list[Hold]:
    """Under the account's lock: its holds and lots past their expiry at `now` are expired (SPEC 11,
    20), so that no figure counts them from that instant, in time order, as if each had been written
    at its instant however late it is: at each instant a lot's expiry is still to be written, the
    holds expired by then first (the money they gave back is what the lot may take; a hold that
    expired after it was active then, and the lot keeps what such holds need), then the lots; then
    the holds expired since, and what kept parts hold beyond what the holds still active need.
    Returns the holds it expired."""
    expired = []
    if lots_due:
        for instant in unwritten_expiries(session, account.user_id, now):
            if account.held:
                expired += expire_due_holds(session, account, instant)
            expire_due_lots(session, account, instant)
    if account.held:
        expired += expire_due_holds(session, account, now)
    if lots_due:
        expire_due_lots(session, account, now)
    return expired


def expire_due_holds(session: Session, account: BillingAccount, now: datetime) -> list[Hold]:
    """Expire the locked account's active holds past their expiry: their money is available again.

    In the caller's transaction, under the account lock (the lock every hold change takes first).
    """
    due = list(
        session.scalars(
            select(Hold)
            .where(Hold.user_id == account.user_id, Hold.status == HoldStatus.ACTIVE, Hold.expires_at <= now)
            .order_by(Hold.expires_at)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    for hold in due:
        account.held -= hold.amount
        hold.settle(HoldStatus.EXPIRED, hold.expires_at)  # expired at that instant, whoever writes it
        hold.settled_balance, hold.settled_available = account.balance, account.available
        record_audit(
            session,
            "hold.expired",
            ctx=SYSTEM,
            user_id=account.user_id,
            details={"hold_id": str(hold.id), "amount": to_api(hold.amount), "request_id": hold.request_id},
        )
        metrics.count_on_commit(session, metrics.HOLDS.labels("expired").inc)
        emit(
            session,
            EventType.HOLD_EXPIRED,
            user_id=account.user_id,
            balance=account.balance,
            available=account.available,
            hold_id=hold.id,
            request_id=hold.request_id,
            amount=hold.amount,
        )
    return due


@dataclass(frozen=True)
class Funds:
    """A person's money as every page and API shows it: the balance, what is set aside (active holds
    and pending refunds, SPEC 4.7) and what may be spent."""

    balance: Decimal
    held: Decimal
    # what lots past their expiry lose when it is written (not in `balance`), by lot id
    losses: dict[int, Decimal] = field(default_factory=dict, compare=False)

    @property
    def available(self) -> Decimal:
        return self.balance - self.held

    @property
    def expiring(self) -> Decimal:
        return sum(self.losses.values(), Decimal(0))


def funds(session: Session, user_id: uuid.UUID, now: datetime) -> Funds:
    """The person's money at `now`, read without a lock (a page's or a summary's; a charge checks
    again under the account's lock). `held` is the account's (its active holds and pending refunds)
    less the holds past their expiry that no transaction has written yet: those count no more from
    that instant (SPEC 11); the balance is less what lots past their expiry lose, as `expire_due`
    will write it (SPEC 20). Raises UserNotFound."""
    past_due = (
        select(func.coalesce(func.sum(Hold.amount), 0))
        .where(Hold.user_id == user_id, Hold.status == HoldStatus.ACTIVE, Hold.expires_at <= now)
        .scalar_subquery()
    )
    due = (CreditLot.user_id == user_id, CreditLot.remaining > 0, CreditLot.expires_at <= now)
    lots_due = select(func.count()).where(*due).scalar_subquery()  # not written yet, or kept for holds
    row = session.execute(
        select(BillingAccount.balance, BillingAccount.held, past_due, lots_due).where(BillingAccount.user_id == user_id)
    ).first()
    if row is None:
        raise UserNotFound()
    if row[3]:  # rare: what the expiry will take, from the rows it will look at, read with the figures again
        holds = (Hold.user_id == user_id, Hold.status == HoldStatus.ACTIVE)
        row = session.execute(
            select(
                BillingAccount.balance,
                BillingAccount.held,
                past_due,
                *[array_of(c, due, SPENDING_ORDER) for c in DUE_LOT_COLUMNS],
                *[array_of(c, holds, (Hold.id,)) for c in ACTIVE_HOLD_COLUMNS],
            ).where(BillingAccount.user_id == user_id)
        ).one()
        lots = [DueLot(*lot) for lot in zip(*(column or [] for column in row[3:7]), strict=True)]
        active = [ActiveHold(*hold) for hold in zip(*(column or [] for column in row[7:10]), strict=True)]
        losses = expiry_losses(lots, active, row[0], row[1], now)
        return Funds(row[0] - sum(losses.values(), Decimal(0)), row[1] - Decimal(row[2]), losses)
    return Funds(balance=row[0], held=row[1] - Decimal(row[2]))


# What `funds` reads of the lots past their expiry (`lots.DueLot`) and of the active holds (`lots.ActiveHold`).
DUE_LOT_COLUMNS = (CreditLot.id, CreditLot.expires_at, CreditLot.expired_at.is_not(None), CreditLot.remaining)
ACTIVE_HOLD_COLUMNS = (Hold.created_at, Hold.expires_at, Hold.amount)


def array_of(column: Any, where: tuple[Any, ...], order_by: tuple[Any, ...]) -> Any:
    """A column of the rows `where` as an array in the given order (NULL when none): a scalar subquery."""
    return select(func.array_agg(aggregate_order_by(column, *order_by))).where(*where).scalar_subquery()


def refuse_if_disabled(session: Session, user_id: uuid.UUID) -> None:
    """Charges and holds of a disabled person answer 403 account_disabled (SPEC 13)."""
    if session.scalar(select(User.disabled_at).where(User.id == user_id)) is not None:
        raise AccountDisabled()


def short_of(account: BillingAccount, req: ChargeRequest, action: str, ctx: Context) -> InsufficientBalance:
    """The refusal of a hold that the locked account's available amount cannot cover, worded for a hold."""
    return insufficient(req, account.balance, account.available, action, ctx, refusal_class=InsufficientBalanceToHold)


def insufficient(
    req: ChargeRequest,
    balance: Decimal,
    available: Decimal,
    action: str,
    ctx: Context,
    *,
    refusal_class: type[InsufficientBalance] = InsufficientBalance,
) -> InsufficientBalance:
    """The refusal of a charge (or, by `refusal_class`, a hold) short of the available amount, with
    its audit row (kept when the transaction is rolled back, by db.atomic)."""
    details = {**req.described(), "balance": to_api(balance), "available": to_api(available)}
    refused = refusal_class(balance, available)
    return refusal(refused, action, ctx=ctx, user_id=req.user_id, details=details)


def credit(
    session: Session,
    *,
    user_id: uuid.UUID,
    amount: Decimal,
    kind: LedgerKind,
    ctx: Context,
    action: str,
    details: dict[str, Any] | None = None,
    memo: str | None = None,
    expires_at: datetime | None = None,
    **reference: Any,
) -> LedgerEntry:
    """Add money to a user's balance inside the caller's transaction (top-up, reward, adjustment,
    redemption): `post` of a positive amount, as a lot of its kind's money expiring at
    `expires_at` (a gift without one: GRANT_EXPIRY_DAYS from now; paid money never expires)."""
    if not isinstance(amount, Decimal) or amount <= 0:
        raise ValueError(f"credit amount must be a positive Decimal, not {amount!r}")
    return post(
        session,
        user_id=user_id,
        amount=amount,
        kind=kind,
        ctx=ctx,
        action=action,
        details=details,
        memo=memo,
        expires_at=expires_at,
        **reference,
    )


def post(
    session: Session,
    *,
    user_id: uuid.UUID,
    amount: Decimal,
    kind: LedgerKind,
    ctx: Context,
    action: str,
    details: dict[str, Any] | None = None,
    memo: str | None = None,
    expires_at: datetime | None = None,
    lot: CreditLot | None = None,
    **reference: Any,
) -> LedgerEntry:
    """Move a user's balance by `amount` (negative: a debit, never beyond the available amount)
    inside the caller's transaction. A credit adds a lot (`expires_at`: see `credit`); a debit
    draws from the lots in the spending order, or from `lot` only (a refund: its order's).

    The caller holds the transaction so that the source row (the paid order, the invite relation,
    the refund) is locked and updated in the same unit of work. Locks the billing account, appends
    the ledger entry (`kind`, `reference` naming its source row) and an audit row `action`.
    Raises UserNotFound, InsufficientBalance; refuses an amount the kind does not move.
    """
    if not in_unit_of_work(session):
        raise RuntimeError("post() must run inside the caller's atomic() block")
    if not isinstance(amount, Decimal) or amount != amount.quantize(Decimal("0.0001")):
        raise ValueError(f"amount must be a Decimal with at most 4 places, not {amount!r}")
    if not LedgerKind(kind).allows(amount):
        raise ValueError(f"{kind} does not move money by {amount}")
    account = lock_account(session, user_id, ctx)
    if -amount > account.available:
        raise InsufficientBalance(account.balance, account.available)
    entry = append_entry(session, account, amount, LedgerKind(kind), memo=memo, **reference)
    now = ctx.now()
    if amount > 0:
        granted = add_lot(session, entry, expires_at=expires_at or grant_expiry(ctx, now), now=now)
        details = {**(details or {}), **({"expires_at": granted.expires_at.isoformat()} if granted.expires_at else {})}
    else:
        draw(session, entry, now, lot=lot)
    record_audit(
        session,
        action,
        ctx=ctx,
        user_id=user_id,
        details={
            "amount": to_api(amount),
            "kind": kind,
            "balance_after": to_api(entry.balance_after),
            **(details or {}),
        },
    )
    return entry


def adjust_balance(
    session: Session,
    *,
    user_id: uuid.UUID,
    amount: Decimal,
    memo: str,
    ctx: Context,
    expires_at: datetime | None = None,
) -> LedgerEntry:
    """Credit a user by hand (support, the demo seed): one transaction of its own."""
    with atomic(session):
        return credit(
            session,
            user_id=user_id,
            amount=amount,
            kind=LedgerKind.ADJUSTMENT,
            ctx=ctx,
            action="balance.adjusted",
            memo=memo,
            expires_at=expires_at,
        )


def get_balance(session: Session, user_id: uuid.UUID) -> Decimal:
    balance = session.scalar(select(BillingAccount.balance).where(BillingAccount.user_id == user_id))
    if balance is None:
        raise UserNotFound()
    return balance


def get_available(session: Session, user_id: uuid.UUID, now: datetime) -> Decimal:
    """What a charge may take now (`funds`: read without a lock, for a page)."""
    return funds(session, user_id, now).available


def own_usage(session: Session, *, user_id: uuid.UUID, usage_id: object) -> UsageLog | None:
    """One of the person's own charges, or None (another person's id finds nothing, as a bad id does)."""
    try:
        wanted = validation.uuid_of(usage_id, "usage_id")
    except InvalidRequest:
        return None
    return session.scalar(select(UsageLog).where(UsageLog.id == wanted, UsageLog.user_id == user_id))


def ledger_page(session: Session, user_id: uuid.UUID, before: object = None) -> Page[LedgerEntry]:
    """A page of the person's balance changes, newest first, each with the balance it left; below the
    id `before` (raw: InvalidRequest when it is not one)."""
    return newest_first(session, select(LedgerEntry).where(LedgerEntry.user_id == user_id), LedgerEntry.id, before)
