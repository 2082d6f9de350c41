"""Credit lots (SPEC 20): which money is which. Every credit adds a lot of its kind (paid, granted,
plan); every debit draws from lots, in one spending order; a granted or plan lot may expire.

The spending order, for every deduct, batch item, capture, plan purchase and admin debit: the
soonest `expires_at` first (never last); among equal expiries plan, then granted, then paid; then
the oldest; then by id. A charge's draws are written by the engine's one statement (books.engine,
the same order in SQL); the debits that are not charges (an admin's debit, an expiry, a refund)
draw here, through the ORM, under the same account lock.

Expiry is like a hold's (SPEC 11): a lot counts no more from its `expires_at` on, except the part
that active holds need at that instant (expiry removes at most balance - held). That kept part is
spent first by their captures (it is the soonest-expiring money) and expires once they settle.
Whoever locks the account next writes the expiry (`accounts.expire_due`, at each instant in time
order), or the expiry job does; reads count it as it will be written (`expiry_losses`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, or_, select
from sqlalchemy.orm import Session, selectinload

from ledger.models import (
    BillingAccount,
    CreditLot,
    EventType,
    Hold,
    HoldStatus,
    LedgerEntry,
    LedgerKind,
    LotCategory,
    LotDraw,
)
from ledger.money import to_api
from ledger.services.audit import record_audit
from ledger.services.context import SYSTEM, Context
from ledger.services.events import emit
from ledger.services.paging import Page, newest_first

NOTICE_DAYS_DEFAULT = 7
EXPIRING_SHOWN = 5  # the lots the summary lists under `expiring`

# The spending order (SPEC 20); the engine's statement and the lots index follow the same.
SPENDING_ORDER = (
    CreditLot.expires_at.asc().nulls_last(),
    CreditLot.spend_rank,
    CreditLot.created_at,
    CreditLot.id,
)


def spendable(now: datetime) -> ColumnElement[bool]:
    """A lot a charge may draw at `now`: money left that no refund set aside, not expired."""
    return (CreditLot.remaining > CreditLot.reserved) & or_(CreditLot.expires_at.is_(None), CreditLot.expires_at > now)


def append_entry(
    session: Session, account: BillingAccount, amount: Decimal, kind: LedgerKind, **reference: Any
) -> LedgerEntry:
    """Move a locked account's balance by `amount` and append the ledger entry that says so (its
    lot, or its draws, are the caller's)."""
    assert kind.allows(amount), f"{kind} does not move money by {amount}"
    account.balance += amount
    entry = LedgerEntry(user_id=account.user_id, amount=amount, balance_after=account.balance, kind=kind, **reference)
    session.add(entry)
    return entry


def add_lot(session: Session, entry: LedgerEntry, *, expires_at: datetime | None, now: datetime) -> CreditLot:
    """The lot of a credit's ledger entry, of the money its kind adds (paid money never expires)."""
    category = LedgerKind(entry.kind).lot_category
    if category is LotCategory.PAID:
        expires_at = None
    lot = CreditLot(
        user_id=entry.user_id,
        category=category,
        entry=entry,
        amount=entry.amount,
        remaining=entry.amount,
        reserved=Decimal(0),
        expires_at=expires_at,
        created_at=now,
    )
    session.add(lot)
    return lot


def grant_expiry(ctx: Context, now: datetime) -> datetime | None:
    """When a gift made now without an expiry of its own expires: GRANT_EXPIRY_DAYS whole days of
    24 hours from now, or never when that is empty (or the context carries no settings)."""
    days = ctx.settings.GRANT_EXPIRY_DAYS if ctx.settings is not None else None
    return now + timedelta(days=days) if days else None


def draw(session: Session, entry: LedgerEntry, now: datetime, *, lot: CreditLot | None = None) -> None:
    """Take a debit's money (an admin's debit, or a refund from its order's `lot`) from the
    account's lots, in the spending order; the caller checked the available amount under the lock.
    A refund draws what its order's lot set aside for it (`reserved`)."""
    wanted = -entry.amount
    if lot is not None:
        lots = [lot]
    else:
        lots = session.scalars(
            select(CreditLot)
            .where(CreditLot.user_id == entry.user_id, spendable(now))
            .order_by(*SPENDING_ORDER)
            .execution_options(populate_existing=True)  # the engine's statements change lots behind the ORM
        ).all()
    for source in lots:
        free = source.remaining if lot is not None else source.remaining - source.reserved
        part = min(free, wanted)
        if part <= 0:
            continue
        source.remaining -= part
        if lot is not None:
            source.reserved -= part
        session.add(LotDraw(lot_id=source.id, ledger_entry=entry, amount=part))
        wanted -= part
        if not wanted:
            return
    raise RuntimeError(f"the lots of {entry.user_id} cannot cover a debit of {-entry.amount}")


def has_due_lots(session: Session, user_id: uuid.UUID, now: datetime) -> bool:
    """Does the person have a lot past its expiry with money left (whose expiry is not written yet,
    or whose kept part may now go)?"""
    soonest = session.scalar(select(next_expiry(CreditLot.user_id == user_id)))
    return soonest is not None and soonest <= now


def next_expiry(which: Any) -> Any:
    """The soonest expiry among the lots of `which` person with money left (a scalar subquery, read
    in a lock statement: the caller compares it with its time once the lock is its own)."""
    lots = CreditLot.__table__
    return (
        select(func.min(lots.c.expires_at))
        .where(which, lots.c.remaining > literal_column("0"))  # the lots index's condition, as a constant
        .scalar_subquery()
    )


def unwritten_expiries(session: Session, user_id: uuid.UUID, now: datetime) -> list[datetime]:
    """The instants, soonest first, of the person's lots past their expiry at `now` with money left
    whose expiry is not written yet (`accounts.expire_due` writes them one instant at a time)."""
    return list(
        session.scalars(
            select(CreditLot.expires_at)
            .where(
                CreditLot.user_id == user_id,
                CreditLot.remaining > 0,
                CreditLot.expires_at <= now,
                CreditLot.expired_at.is_(None),
            )
            .group_by(CreditLot.expires_at)
            .order_by(CreditLot.expires_at)
        )
    )


def expire_due_lots(session: Session, account: BillingAccount, now: datetime) -> list[CreditLot]:
    """Write the expiry of the locked account's lots past their expiry at `now` (SPEC 20), in the
    spending order; the caller expired the holds past theirs by `now`. First what kept parts hold
    beyond what the still active holds placed before their expiry need goes (those holds settled);
    then a lot whose expiry is not written yet is written (`expired_at`): it loses its remaining,
    but never more in all than balance - held; what it keeps is for the holds active at that
    instant, so `now` must be its instant (`accounts.expire_due` calls this at each instant, in
    time order, then at its own time). Each removal writes a ledger entry (`expiry`), its draw, an
    audit row and a credit.expired event. Returns the lots that lost money."""
    due = session.scalars(
        select(CreditLot)
        .where(CreditLot.user_id == account.user_id, CreditLot.remaining > 0, CreditLot.expires_at <= now)
        .order_by(*SPENDING_ORDER)
        .execution_options(populate_existing=True)  # the engine's statements change lots behind the ORM
    ).all()
    expired = []
    kept = [lot for lot in due if lot.expired_at is not None]
    if kept:
        holds = session.execute(
            select(Hold.created_at, Hold.amount).where(
                Hold.user_id == account.user_id, Hold.status == HoldStatus.ACTIVE
            )
        ).all()
        kept_so_far = Decimal(0)
        for lot in kept:
            needed = sum((amount for created, amount in holds if created < lot.expires_at), Decimal(0)) - kept_so_far
            keep = min(lot.remaining, max(needed, Decimal(0)))
            kept_so_far += keep
            if lot.remaining > keep:  # the holds it was kept for have settled
                _remove(session, account, lot, lot.remaining - keep, at=now)
                expired.append(lot)
    for lot in due:
        if lot.expired_at is None:  # its instant: expire what no active hold needs
            lot.expired_at = lot.expires_at
            part = min(lot.remaining, account.balance - account.held)
            if part > 0:
                _remove(session, account, lot, part, at=lot.expires_at)
                expired.append(lot)
    return expired


@dataclass(frozen=True)
class DueLot:
    """A lot past its expiry with money left, as a read sees it (`expiry_losses`)."""

    id: int
    expires_at: datetime
    written: bool  # its expiry is written (what it has left is kept for holds)
    remaining: Decimal


@dataclass(frozen=True)
class ActiveHold:
    """An active hold as a read sees it (`expiry_losses`); it may be past its expiry."""

    created_at: datetime
    expires_at: datetime
    amount: Decimal


def expiry_losses(
    lots: list[DueLot], holds: list[ActiveHold], balance: Decimal, held: Decimal, now: datetime
) -> dict[int, Decimal]:
    """What each lot past its expiry loses when its expiry is written at `now`, computed from what
    a read found (`accounts.funds`, `kinds_of`): the steps of `accounts.expire_due`, in the same
    order. `lots` in the spending order, `holds` the active ones, `balance` and `held` the account's."""
    left = {lot.id: lot.remaining for lot in lots}
    written = {lot.id for lot in lots if lot.written}

    def release(instant: datetime) -> Decimal:
        """What kept parts hold beyond what the holds active at `instant` placed before need."""
        gone, kept_so_far = Decimal(0), Decimal(0)
        for lot in lots:
            if lot.id in written:
                placed_before = (h.amount for h in holds if h.expires_at > instant and h.created_at < lot.expires_at)
                keep = min(left[lot.id], max(sum(placed_before, Decimal(0)) - kept_so_far, Decimal(0)))
                kept_so_far += keep
                gone += left[lot.id] - keep
                left[lot.id] = keep
        return gone

    for instant in [*sorted({lot.expires_at for lot in lots if not lot.written}), now]:
        held_then = held - sum((h.amount for h in holds if h.expires_at <= instant), Decimal(0))
        balance -= release(instant)
        for lot in lots:
            if lot.id not in written and lot.expires_at <= instant:
                written.add(lot.id)
                part = min(left[lot.id], balance - held_then)
                if part > 0:
                    left[lot.id] -= part
                    balance -= part
    return {lot.id: lot.remaining - left[lot.id] for lot in lots if left[lot.id] != lot.remaining}


def _remove(session: Session, account: BillingAccount, lot: CreditLot, part: Decimal, *, at: datetime) -> None:
    """Expire `part` of a lot: its ledger entry, draw, audit row and credit.expired event."""
    lot.remaining -= part
    entry = append_entry(session, account, -part, LedgerKind.EXPIRY, memo=f"lot {lot.id}")
    session.add(LotDraw(lot_id=lot.id, ledger_entry=entry, amount=part, created_at=at))
    details = {"lot_id": lot.id, "category": lot.category.value, "amount": to_api(part)}
    record_audit(session, "credit.expired", ctx=SYSTEM, user_id=account.user_id, details=details)
    emit(
        session,
        EventType.CREDIT_EXPIRED,
        user_id=account.user_id,
        balance=account.balance,
        available=account.available,
        lot_id=lot.id,
        category=lot.category.value,
        amount=part,
        expires_at=lot.expires_at,
    )


# --- what pages and the API show ---------------------------------------------------------------------


@dataclass(frozen=True)
class Kinds:
    """A balance by the kind of its money (SPEC 20), at one instant: lots past their expiry count
    no more (their kept part aside), and the next lots to expire."""

    paid: Decimal
    granted: Decimal
    plan: Decimal
    expiring: list[CreditLot]

    @property
    def next_expiring(self) -> CreditLot | None:
        return self.expiring[0] if self.expiring else None


def kinds_of(session: Session, user_id: uuid.UUID, now: datetime) -> Kinds:
    """The person's money by kind at `now`, read without a lock (a page's or a summary's), adding up
    to the balance `accounts.funds` shows: a lot past its expiry counts for what it keeps for holds
    (written, or as `accounts.expire_due` will write it)."""
    from ledger.services.books.accounts import funds  # accounts builds on this module

    lots = session.scalars(
        select(CreditLot).where(CreditLot.user_id == user_id, CreditLot.remaining > 0).order_by(*SPENDING_ORDER)
    ).all()
    losses = funds(session, user_id, now).losses
    sums = {category: Decimal("0.0000") for category in LotCategory}
    for lot in lots:
        sums[lot.category] += lot.remaining - losses.get(lot.id, Decimal(0))
    expiring = [lot for lot in lots if lot.expires_at is not None and lot.expires_at > now][:EXPIRING_SHOWN]
    return Kinds(
        paid=sums[LotCategory.PAID], granted=sums[LotCategory.GRANTED], plan=sums[LotCategory.PLAN], expiring=expiring
    )


def lots_page(session: Session, user_id: uuid.UUID, before: object = None) -> Page[CreditLot]:
    """A page of the person's lots, newest first; below the id `before` (raw)."""
    lots = select(CreditLot).where(CreditLot.user_id == user_id).options(selectinload(CreditLot.entry))  # its source
    return newest_first(session, lots, CreditLot.id, before)


def draws_of_lots(session: Session, lot_ids: list[int], limit: int = 50) -> dict[int, list[LotDraw]]:
    """The newest `limit` draws from each of the lots, newest first (the admin's person page): one query."""
    newest = func.row_number().over(partition_by=LotDraw.lot_id, order_by=LotDraw.id.desc()).label("newest")
    ranked = select(LotDraw.id, newest).where(LotDraw.lot_id.in_(lot_ids)).subquery()
    draws = session.scalars(
        select(LotDraw)
        .join(ranked, ranked.c.id == LotDraw.id)
        .where(ranked.c.newest <= limit)
        .order_by(LotDraw.lot_id, LotDraw.id.desc())
    )
    found: dict[int, list[LotDraw]] = {lot_id: [] for lot_id in lot_ids}
    for draw in draws:
        found[draw.lot_id].append(draw)
    return found


def drawn_by_usage(session: Session, usage_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Decimal]]:
    """What charges drew, by kind of money (a replay answers what the charge first drew): one query."""
    rows = session.execute(
        select(LotDraw.usage_log_id, CreditLot.category, func.sum(LotDraw.amount))
        .join(CreditLot, CreditLot.id == LotDraw.lot_id)
        .where(LotDraw.usage_log_id.in_(usage_ids))
        .group_by(LotDraw.usage_log_id, CreditLot.category)
    ).all()
    sums: dict[uuid.UUID, dict[str, Decimal]] = {usage_id: {} for usage_id in usage_ids}
    for usage_id, category, total in rows:
        sums[usage_id][category.value] = total
    return {usage_id: drawn_dict(by_kind) for usage_id, by_kind in sums.items()}


def drawn_dict(sums: dict[str, Decimal | None]) -> dict[str, Decimal]:
    """A charge's `drawn`: paid, granted and plan, each present (zero when none)."""
    return {c.value: Decimal(sums.get(c.value) or 0) for c in (LotCategory.PAID, LotCategory.GRANTED, LotCategory.PLAN)}


def order_lot(session: Session, order_id: uuid.UUID) -> CreditLot | None:
    """The paid lot of a top-up order (None before it is paid), as it is now: read again (charges
    change lots behind the ORM, and a refund's session keeps its copy across XorPay's call) and
    locked for the caller's transaction. A refund draws only from it."""
    return session.scalar(
        select(CreditLot)
        .join(LedgerEntry, LedgerEntry.id == CreditLot.ledger_entry_id)
        .where(LedgerEntry.payment_transaction_id == order_id)
        .with_for_update(of=CreditLot)
        .execution_options(populate_existing=True)
    )
