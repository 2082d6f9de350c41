"""Spending limits (SPEC 22): a cap on what a day or a month, in the person's time zone, may take
from their wallet. The person sets one on /account, an admin on the person's page; where both
exist for a period, the lower applies.

A period's spending is what left the wallet in it: the paid and given money its charges drew (plan
money does not count again: the plan's price counted when it was bought), and its holds, counted in
the period they were placed in, at their whole amount while active and at their capture's wallet
part once captured (nothing once released or expired). It is read from the books under the
account's lock, only for people who have a limit, so the check is exact under any concurrency and
costs nothing to everyone else. A request that would take a period over its limit is refused with
402 `spending_limit_reached`; captures and releases never fail for a limit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, exists, func, select, update
from sqlalchemy.orm import Session

from ledger.config import Settings
from ledger.db import atomic
from ledger.errors import InvalidRequest, LedgerError, SpendingLimitReached
from ledger.i18n import N_
from ledger.models import (
    CreditLot,
    EventType,
    Hold,
    HoldStatus,
    LimitPeriod,
    LimitSetter,
    LotCategory,
    LotDraw,
    SpendingLimit,
    UsageLog,
    User,
)
from ledger.money import InvalidAmount, parse_amount, to_api
from ledger.services.audit import record_audit, refusal
from ledger.services.books.lots import SPENDING_ORDER
from ledger.services.context import Context
from ledger.services.events import emit_change

ORDER = (LimitPeriod.DAY, LimitPeriod.MONTH)  # the day is checked before the month
MAX_LIMIT = Decimal("1000000.00")


def period_bounds(period: LimitPeriod, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The period of `now` in `tz`: from its local midnight (the day's, or the month's first) to the next."""
    today = now.astimezone(tz).date()
    if period == LimitPeriod.DAY:
        first, following = today, today + timedelta(days=1)
    else:
        first = today.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    return datetime.combine(first, time.min, tzinfo=tz), datetime.combine(following, time.min, tzinfo=tz)


def site_zone(ctx: Context) -> ZoneInfo:
    """The site's DEFAULT_TIMEZONE, from the context's settings (a context without: the default)."""
    return ZoneInfo(Settings.DEFAULT_TIMEZONE) if ctx.settings is None else ctx.settings.timezone


def has_limits(user_id: object) -> object:
    """SQL: does the person have a spending limit (the lock's statements read it in their round trip)."""
    return exists().where(SpendingLimit.user_id == user_id)


def person_zone(session: Session, user_id: uuid.UUID, site: ZoneInfo) -> ZoneInfo:
    own = session.scalar(select(User.timezone).where(User.id == user_id))
    return ZoneInfo(own) if own else site


# --- what a period has spent ------------------------------------------------------------------------


def _wallet_draws(usage_id: object) -> object:
    """SQL: what the charge `usage_id` drew from the wallet (paid and given money, not plan money)."""
    return (
        select(func.coalesce(func.sum(LotDraw.amount), 0))
        .join(CreditLot, CreditLot.id == LotDraw.lot_id)
        .where(LotDraw.usage_log_id == usage_id, CreditLot.category != LotCategory.PLAN)
        .scalar_subquery()
    )


def spent_since(session: Session, user_id: uuid.UUID, starts: list[datetime]) -> list[Decimal]:
    """What the person's wallet spent from each of `starts` until now (the latest start last is
    fine: one pass over the earliest one's rows)."""
    earliest = min(starts)
    charges = (
        select(UsageLog.created_at.label("at"), func.sum(LotDraw.amount).label("amount"))
        .join(LotDraw, LotDraw.usage_log_id == UsageLog.id)
        .join(CreditLot, CreditLot.id == LotDraw.lot_id)
        .where(
            UsageLog.user_id == user_id,
            UsageLog.created_at >= earliest,
            CreditLot.category != LotCategory.PLAN,
            ~exists().where(Hold.usage_log_id == UsageLog.id),  # a capture counts with its hold
        )
        .group_by(UsageLog.id, UsageLog.created_at)
    )
    holds = select(
        Hold.created_at.label("at"),
        case(
            (Hold.status == HoldStatus.ACTIVE, Hold.amount),
            (Hold.status == HoldStatus.CAPTURED, _wallet_draws(Hold.usage_log_id)),
            else_=0,
        ).label("amount"),
    ).where(Hold.user_id == user_id, Hold.created_at >= earliest)
    counted = charges.union_all(holds).subquery()
    row = session.execute(
        select(
            *[
                func.coalesce(func.sum(counted.c.amount).filter(counted.c.at >= start), 0).label(f"s{i}")
                for i, start in enumerate(starts)
            ]
        )
    ).one()
    return [Decimal(value) for value in row]


# --- the check, under the account's lock --------------------------------------------------------------


@dataclass
class Limit:
    """A period's limit that applies (the lower of the person's and the admin's) and its spending."""

    id: int
    period: LimitPeriod
    amount: Decimal
    set_by: LimitSetter
    starts: datetime
    resets_at: datetime
    spent: Decimal

    def refusal(self) -> SpendingLimitReached:
        return SpendingLimitReached(self.period, self.amount, self.spent, self.resets_at)


@dataclass
class Spending:
    """A locked person's limits and what each period has spent, as the engine decides on it; the
    requests it admits in this transaction add to it one after the other (a batch's items)."""

    user_id: uuid.UUID
    limits: list[Limit]
    lots: list[list]  # [category, spendable] of their lots, in the spending order
    reached: list[Limit] = field(default_factory=list)  # reached by what was admitted here

    def admit(self, amount: Decimal, *, hold: bool) -> SpendingLimitReached | None:
        """Count a charge of `amount` (its wallet part) or a hold (its whole amount) against the
        limits, day first: the refusal of the first it would pass, else None (and it is counted)."""
        count = amount if hold else self._wallet_part(amount)
        for limit in self.limits:
            if limit.spent + count > limit.amount:
                if limit not in self.reached:
                    self.reached.append(limit)
                return limit.refusal()
        if not hold:
            self._draw(amount)
        for limit in self.limits:
            limit.spent += count
            if limit.spent >= limit.amount and limit not in self.reached:
                self.reached.append(limit)
        return None

    def _wallet_part(self, amount: Decimal) -> Decimal:
        left, wallet = amount, Decimal(0)
        for category, spendable in self.lots:
            take = min(left, spendable)
            if category != LotCategory.PLAN:
                wallet += take
            left -= take
            if not left:
                break
        return wallet + left  # what no lot covers (never, once the balance check passed)

    def _draw(self, amount: Decimal) -> None:
        left = amount
        for lot in self.lots:
            take = min(left, lot[1])
            lot[1] -= take
            left -= take
            if not left:
                return


def _periods(
    session: Session, user_id: uuid.UUID, periods: set[LimitPeriod], now: datetime, site: ZoneInfo
) -> dict[LimitPeriod, tuple[datetime, datetime, Decimal]]:
    """Each period of `now` in the person's zone: its start, its end, and what it has spent."""
    tz = person_zone(session, user_id, site)
    bounds = {period: period_bounds(period, now, tz) for period in periods}
    spent = spent_since(session, user_id, [starts for starts, _ in bounds.values()])
    return {period: (*bounds[period], amount) for period, amount in zip(bounds, spent, strict=True)}


def spending(session: Session, user_id: uuid.UUID, now: datetime, site: ZoneInfo) -> Spending | None:
    """The person's limits and each period's spending at `now`, read under their account's lock
    (the caller's), or None when they have no limit. Lots past their expiry at `now` spend nothing."""
    rows = session.scalars(select(SpendingLimit).where(SpendingLimit.user_id == user_id)).all()
    if not rows:
        return None
    lowest: dict[LimitPeriod, SpendingLimit] = {}
    for row in rows:
        if row.period not in lowest or row.amount < lowest[row.period].amount:
            lowest[row.period] = row
    periods = _periods(session, user_id, set(lowest), now, site)
    limits = [
        Limit(row.id, period, row.amount, row.set_by, *periods[period])
        for period in ORDER
        if (row := lowest.get(period)) is not None
    ]
    spendable = CreditLot.remaining - CreditLot.reserved
    lots = session.execute(
        select(CreditLot.category, spendable)
        .where(
            CreditLot.user_id == user_id,
            CreditLot.remaining > 0,  # the lots index's condition, said as it is: else every lot is read
            spendable > 0,
            CreditLot.expires_at.is_(None) | (CreditLot.expires_at > now),
        )
        .order_by(*SPENDING_ORDER)
    ).all()
    return Spending(user_id, limits, [[category, amount] for category, amount in lots])


def note_reached(session: Session, spending: Spending | None) -> None:
    """In the caller's transaction: a limit.reached event for each limit that what it admitted (or
    refused) reached, once per period and limit (the limit row keeps the period it was sent for)."""
    if spending is None:
        return
    for limit in spending.reached:
        reach(session, spending.user_id, limit)
    spending.reached.clear()


def reach(session: Session, user_id: uuid.UUID, limit: Limit) -> None:
    sent = session.execute(
        update(SpendingLimit)
        .where(
            SpendingLimit.id == limit.id,
            SpendingLimit.reached_for.is_(None) | (SpendingLimit.reached_for != limit.starts),
        )
        .values(reached_for=limit.starts)
        .returning(SpendingLimit.id)
    ).first()
    if sent is not None:
        emit_change(
            session,
            EventType.LIMIT_REACHED,
            user_id=user_id,
            period=limit.period.value,
            set_by=limit.set_by.value,
            limit=limit.amount,
            spent=limit.spent,
            period_start=limit.starts,
            resets_at=limit.resets_at,
        )


def over_limit(error: LedgerError | None, req: Any, account: Any, action: str, ctx: Context) -> LedgerError:
    """A request's refusal by a limit, to raise in its unit of work: after the rollback it keeps its
    audit row (`action`) and the limit.reached event the refusal causes (once per period and limit)."""
    assert isinstance(error, SpendingLimitReached)
    details = {**req.described(), **{k: to_api(v) if isinstance(v, Decimal) else v for k, v in error.details.items()}}
    refused = refusal(error, action, ctx=ctx, user_id=req.user_id, details=details)
    reached = account.spending

    def keep(session: Session) -> None:
        note_reached(session, reached)

    refused.also_keep = keep
    return refused


# --- setting and reading limits --------------------------------------------------------------------


def limit_amount(raw: object, field_name: str = "amount") -> Decimal:
    """A limit as typed: yuan with at most 2 places, from 0 (nothing may be spent) to 1,000,000."""
    if isinstance(raw, str) and raw.strip() in ("0", "0.0", "0.00"):
        return Decimal("0.00")
    try:
        return parse_amount(raw.strip() if isinstance(raw, str) else raw, places=2, maximum=MAX_LIMIT)
    except InvalidAmount:
        raise InvalidRequest(
            N_("Enter an amount from 0 to 1,000,000 yuan, with at most 2 decimals."), field=field_name
        ) from None


def set_limit(
    session: Session,
    ctx: Context,
    *,
    user_id: uuid.UUID,
    period: object,
    amount: object,
    set_by: LimitSetter,
    reason: str | None = None,
) -> SpendingLimit | None:
    """Set (or, with an empty `amount`, clear) the `set_by` limit of `period` for the person,
    audited (`limit.set` / `limit.cleared`, an admin's with their reason). A limit may be set below
    what the period has spent already: the next request that counts is refused."""
    try:
        which = LimitPeriod(period)
    except ValueError:
        raise InvalidRequest(N_("Choose day or month."), field="period") from None
    value = _typed(amount, "amount")
    with atomic(session):
        return _put(session, ctx, user_id, which, value, set_by, reason)


def _typed(raw: object, field_name: str) -> Decimal | None:
    """A limit as typed, or None (clear) when empty."""
    clear = raw is None or (isinstance(raw, str) and not raw.strip())
    return None if clear else limit_amount(raw, field_name)


def _put(
    session: Session,
    ctx: Context,
    user_id: uuid.UUID,
    which: LimitPeriod,
    value: Decimal | None,
    set_by: LimitSetter,
    reason: str | None,
) -> SpendingLimit | None:
    """Write (or delete) one limit and its audit row, in the caller's transaction."""
    details: dict[str, object] = {"period": which.value, "amount": None if value is None else str(value)}
    if set_by == LimitSetter.ADMIN:
        details = ctx.admin_details(reason or "", **details)
    row = session.scalar(
        select(SpendingLimit)
        .where(SpendingLimit.user_id == user_id, SpendingLimit.period == which, SpendingLimit.set_by == set_by)
        .with_for_update()
    )
    if value is None:
        if row is not None:
            session.delete(row)
        record_audit(session, "limit.cleared", ctx=ctx, user_id=user_id, details={**details, "set_by": set_by})
        return None
    if row is None:
        row = SpendingLimit(user_id=user_id, period=which, set_by=set_by, amount=value)
        session.add(row)
    else:
        row.amount, row.updated_at = value, ctx.now()
    record_audit(session, "limit.set", ctx=ctx, user_id=user_id, details={**details, "set_by": set_by})
    return row


def set_limits(
    session: Session,
    ctx: Context,
    *,
    user_id: uuid.UUID,
    day: object,
    month: object,
    set_by: LimitSetter,
    reason: str | None = None,
) -> None:
    """Set (or clear, when empty) the `set_by` limits of both periods in one transaction, both
    checked first: a bad one names its field (`day` or `month`) and nothing changes."""
    values = {LimitPeriod.DAY: _typed(day, "day"), LimitPeriod.MONTH: _typed(month, "month")}
    with atomic(session):
        for period, value in values.items():
            _put(session, ctx, user_id, period, value, set_by, reason)


@dataclass(frozen=True)
class LimitUse:
    """A limit as pages and the API show it: who set it, the period, and how much of it is used."""

    period: LimitPeriod
    set_by: LimitSetter
    amount: Decimal
    spent: Decimal
    resets_at: datetime
    applies: bool  # the lower of the period's two (or the only one)

    @property
    def left(self) -> Decimal:
        return max(self.amount - self.spent, Decimal(0))


def limits_of(session: Session, user_id: uuid.UUID, now: datetime, site: ZoneInfo) -> list[LimitUse]:
    """The person's limits with each period's spending at `now`, day first, the person's before the admin's."""
    rows = session.scalars(select(SpendingLimit).where(SpendingLimit.user_id == user_id)).all()
    if not rows:
        return []
    periods = _periods(session, user_id, {row.period for row in rows}, now, site)
    lowest = {p: min(r.amount for r in rows if r.period == p) for p in periods}
    rows = sorted(rows, key=lambda r: (ORDER.index(r.period), list(LimitSetter).index(r.set_by)))
    found, used = [], set()
    for row in rows:
        _, resets_at, spent = periods[row.period]
        applies = row.amount == lowest[row.period] and row.period not in used
        used |= {row.period} if applies else set()
        found.append(LimitUse(row.period, row.set_by, row.amount, spent, resets_at, applies))
    return found
