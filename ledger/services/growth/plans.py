"""Plans (套餐, SPEC 21): a price a week or a month for an allowance of plan money, renewed by the
job until it lapses.

- The back office creates, edits and retires plans (`create_plan`, `edit_plan`, `retire_plan`:
  each with the admin and a reason, audited). An edit of the names, price or allowance applies from
  each subscription's next period: a period keeps what it was sold at (SubscriptionPeriod). A plan's
  code and period never change (retire it and make another).
- A person subscribes (`subscribe`: /plans, or the SaaS's POST /api/plans/subscribe). Each period
  sold is one transaction: the price is charged by the one charge engine (`charge_within`: model
  `plan:<code>`, request id `subscription:<id>:<n>`, so that nothing charges a period twice), from
  the balance as it is (a price is never paid from the allowance it buys), then the allowance is
  credited as a `plan` lot expiring at the period's end, its ledger entry naming the period.
- `cancel` turns auto-renew off (status `cancelled`); the allowance stays until the period ends.
- `renew_due` (the job, every minute): at a period's end an active subscription of a plan still
  sold is renewed, its next period charged and granted (event `subscription.renewed`); otherwise
  (cancelled, the plan retired, the balance short, the account disabled, a spending limit) it lapses
  at that end (event `subscription.lapsed`, with its reason: a cancellation's too, so that the SaaS
  hears of every subscription that ended). No partial period is sold.

Periods end at the same local time a week or a calendar month later in the person's time zone (kept
on the subscription when it starts), counted from its first start: 31 January, then 28 (29)
February, then 31 March. Every time is the context's clock.

Locks, always in this order: a subscription (the job, cancel), then the plan (shared: an admin's
edit or retirement waits for the sales in progress), then the person's billing account (the charge).
`subscribe` takes the plan and the account first and only inserts its subscription, so that a
person's subscribes to one plan are one after the other.
"""

from __future__ import annotations

import calendar
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger import validation
from ledger.config import Settings
from ledger.db import atomic, lock
from ledger.errors import (
    AlreadySubscribed,
    InvalidRequest,
    LedgerError,
    PlanNotFound,
    PlanRetired,
    SubscriptionNotFound,
)
from ledger.i18n import N_
from ledger.models import (
    CreditLot,
    EventType,
    LapseReason,
    LedgerEntry,
    LedgerKind,
    Plan,
    PlanPeriod,
    Subscription,
    SubscriptionPeriod,
    SubscriptionStatus,
    User,
)
from ledger.money import parse_amount, to_api
from ledger.services.audit import record_audit
from ledger.services.books.accounts import ChargeRequest, Funds, credit, funds, lock_account
from ledger.services.books.charges import charge_within
from ledger.services.context import Context, reason_of
from ledger.services.events import emit, emit_change

log = logging.getLogger(__name__)

CODE = re.compile(r"[a-z0-9-]{2,32}")
NAME_MAX = 100
MAX_PRICE = Decimal("100000.00")
MAX_ALLOWANCE = Decimal("1000000.00")
BATCH = 200  # due subscriptions read at a time by the job
HELD = (SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELLED)  # a person holds the plan
LAPSE_BANNER_DAYS = 14  # pages offer a top-up this long after a subscription lapsed for lack of money
# The refusals of a renewal's charge that end a subscription (any other is a fault: logged, retried).
LAPSES_FOR = {
    "insufficient_balance": LapseReason.INSUFFICIENT_BALANCE,
    "account_disabled": LapseReason.ACCOUNT_DISABLED,
    "spending_limit_reached": LapseReason.SPENDING_LIMIT_REACHED,
}


# --- periods ---------------------------------------------------------------------------------------


def add_periods(start: datetime, count: int, period: PlanPeriod, tz: ZoneInfo) -> datetime:
    """`count` weeks or calendar months after `start`, at the same local time in `tz` (a month
    that lacks the day ends on its last day: 31 January + 1 month = 28 or 29 February). UTC."""
    wall = start.astimezone(tz).replace(tzinfo=None)
    if PlanPeriod(period) is PlanPeriod.WEEK:
        wall += timedelta(weeks=count)
    else:
        year, month = divmod(wall.year * 12 + wall.month - 1 + count, 12)
        wall = wall.replace(year=year, month=month + 1, day=min(wall.day, calendar.monthrange(year, month + 1)[1]))
    return wall.replace(tzinfo=tz).astimezone(UTC)


def person_zone(session: Session, user_id: uuid.UUID, ctx: Context) -> ZoneInfo:
    """The person's own time zone, else the site's DEFAULT_TIMEZONE."""
    own = session.scalar(select(User.timezone).where(User.id == user_id))
    return ZoneInfo(own or (ctx.settings.DEFAULT_TIMEZONE if ctx.settings else Settings.DEFAULT_TIMEZONE))


def next_period(sub: Subscription, period: PlanPeriod, now: datetime) -> tuple[datetime, datetime]:
    """The period that follows the subscription's current one: from its end, unless whole periods
    have passed since (the job did not run): then the one under way at `now` (those missed are not
    sold). Counted from the first start, in the subscription's zone."""
    tz = ZoneInfo(sub.timezone)
    slot = sub.periods  # the current period's place from the first start (>= periods sold)
    while add_periods(sub.started_at, slot, period, tz) < sub.current_period_end:
        slot += 1
    slot += 1
    while add_periods(sub.started_at, slot, period, tz) <= now:
        slot += 1
    return add_periods(sub.started_at, slot - 1, period, tz), add_periods(sub.started_at, slot, period, tz)


# --- the back office ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanDraft:
    """A plan's fields, checked: what a creation or an edit writes."""

    code: str
    name_zh: str
    name_en: str
    price: Decimal
    period: PlanPeriod
    allowance: Decimal

    def described(self) -> dict[str, str]:
        return {
            "code": self.code,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "price": to_api(self.price),
            "period": self.period.value,
            "allowance": to_api(self.allowance),
        }


def _names_and_money(name_zh: object, name_en: object, price: object, allowance: object) -> dict[str, Any]:
    return {
        "name_zh": validation.text(name_zh, "name_zh", max_length=NAME_MAX, printable=True),
        "name_en": validation.text(name_en, "name_en", max_length=NAME_MAX, printable=True),
        "price": parse_amount(price, places=2, maximum=MAX_PRICE, field="price"),
        "allowance": parse_amount(allowance, places=2, maximum=MAX_ALLOWANCE, field="allowance"),
    }


def preview_create_plan(
    session: Session,
    *,
    code: object,
    name_zh: object,
    name_en: object,
    price: object,
    period: object,
    allowance: object,
) -> PlanDraft:
    """`create_plan`'s check, without writing: a code of 2 to 32 lowercase letters, digits and
    dashes that no plan has; names of 1 to 100 characters; a price and an allowance of at most two
    decimals; a period, week or month. Raises InvalidRequest naming the field."""
    shown = validation.text(code, "code", max_length=32, min_length=1)
    if not CODE.fullmatch(shown):
        raise InvalidRequest(N_("Use 2 to 32 lowercase letters, digits and dashes."), field="code")
    if session.scalar(select(Plan.id).where(Plan.code == shown)) is not None:
        raise InvalidRequest(N_("A plan has this code already."), field="code")
    if period not in (PlanPeriod.WEEK.value, PlanPeriod.MONTH.value):
        raise InvalidRequest(N_("Choose week or month."), field="period")
    return PlanDraft(code=shown, period=PlanPeriod(period), **_names_and_money(name_zh, name_en, price, allowance))


def create_plan(session: Session, admin: Context, *, reason: object, **fields: object) -> Plan:
    """Make a plan (see `preview_create_plan`), sold at once; audited `plans.created` with the admin
    and the reason. One transaction."""
    why = reason_of(reason)
    draft = preview_create_plan(session, **fields)
    now = admin.now()
    try:
        with atomic(session):
            plan = Plan(id=uuid.uuid4(), **vars(draft), active=True, created_at=now, updated_at=now)
            session.add(plan)
            session.flush()
            record_audit(
                session,
                "plans.created",
                ctx=admin,
                user_id=admin.admin_id,
                details=admin.admin_details(why, plan_id=str(plan.id), **draft.described()),
            )
    except IntegrityError:  # another admin took the code meanwhile
        raise InvalidRequest(N_("A plan has this code already."), field="code") from None
    return plan


def plan_by_code(session: Session, raw: object, *, for_sale: bool = False) -> Plan:
    """The plan of code `raw`; PlanNotFound (naming `plan`) for none, or a text that is no code;
    with `for_sale`, locked shared for the transaction, and PlanRetired unless it is sold."""
    if not isinstance(raw, str):
        raise InvalidRequest(N_("Enter text."), field="plan")
    if not CODE.fullmatch(raw):
        raise PlanNotFound(field="plan")
    query = select(Plan).where(Plan.code == raw)
    if for_sale:
        query = query.with_for_update(read=True).execution_options(populate_existing=True)
    plan = session.scalar(query)
    if plan is None:
        raise PlanNotFound(field="plan")
    if for_sale and not plan.active:
        raise PlanRetired(field="plan")
    return plan


@dataclass(frozen=True)
class PlanChange:
    """An edit as the confirmation step shows it: the plan, and each field that changes (before, after)."""

    plan: Plan
    changes: dict[str, tuple[object, object]]


def preview_edit_plan(
    session: Session, code: object, *, name_zh: object, name_en: object, price: object, allowance: object
) -> PlanChange:
    """`edit_plan`'s check: the plan (PlanNotFound; InvalidRequest when it is retired), the new
    names, price and allowance checked as for a creation; InvalidRequest when nothing changes."""
    plan = plan_by_code(session, code)
    if not plan.active:
        raise InvalidRequest(N_("A retired plan cannot be edited."), field="reason")
    wanted = _names_and_money(name_zh, name_en, price, allowance)
    changes = {k: (getattr(plan, k), v) for k, v in wanted.items() if getattr(plan, k) != v}
    if not changes:
        raise InvalidRequest(N_("Nothing to change: the plan already reads so."), field="reason")
    return PlanChange(plan, changes)


def edit_plan(session: Session, admin: Context, code: object, *, reason: object, **fields: object) -> Plan:
    """Change a plan's names, price or allowance (see `preview_edit_plan`): the periods sold keep
    what they were sold at; the next ones, renewals included, are sold at the new figures. Locks the
    plan (the sales in progress finish first); audited `plans.edited` with each change."""
    why = reason_of(reason)
    plan = preview_edit_plan(session, code, **fields).plan
    with atomic(session):
        locked = lock(session, Plan, Plan.id == plan.id)
        assert locked is not None
        change = preview_edit_plan(session, code, **fields)  # again, under the lock
        for name, (_before, after) in change.changes.items():
            setattr(locked, name, after)
        locked.updated_at = admin.now()
        shown = {k: [_plain(b), _plain(a)] for k, (b, a) in change.changes.items()}
        record_audit(
            session,
            "plans.edited",
            ctx=admin,
            user_id=admin.admin_id,
            details=admin.admin_details(why, plan_id=str(locked.id), code=locked.code, changes=shown),
        )
    return locked


def _plain(value: object) -> object:
    return to_api(value) if isinstance(value, Decimal) else value


def preview_retire_plan(session: Session, code: object) -> tuple[Plan, int]:
    """The plan to retire and how many subscriptions hold it; InvalidRequest when it is retired already."""
    plan = plan_by_code(session, code)
    if not plan.active:
        raise InvalidRequest(N_("Nothing to change: the plan is retired already."), field="reason")
    return plan, holders(session, plan.id)


def holders(session: Session, plan_id: uuid.UUID) -> int:
    """How many subscriptions hold the plan (active or cancelled)."""
    return (
        session.scalar(select(func.count()).where(Subscription.plan_id == plan_id, Subscription.status.in_(HELD))) or 0
    )


def retire_plan(session: Session, admin: Context, code: object, *, reason: object) -> Plan:
    """Stop selling a plan: no new subscription, no renewal; the subscriptions that hold it run to
    the end of their period, then lapse (reason `plan_retired`). Audited `plans.retired`."""
    why = reason_of(reason)
    plan, count = preview_retire_plan(session, code)
    with atomic(session):
        locked = lock(session, Plan, Plan.id == plan.id)
        assert locked is not None
        if not locked.active:
            raise InvalidRequest(N_("Nothing to change: the plan is retired already."), field="reason")
        locked.active, locked.retired_at = False, admin.now()
        locked.updated_at = admin.now()
        record_audit(
            session,
            "plans.retired",
            ctx=admin,
            user_id=admin.admin_id,
            details=admin.admin_details(why, plan_id=str(locked.id), code=locked.code, subscriptions=count),
        )
    return locked


@dataclass(frozen=True)
class PlanFigures:
    plan: Plan
    holders: int  # active or cancelled subscriptions


def list_plans(session: Session, *, for_sale: bool = False) -> list[PlanFigures]:
    """The plans with how many subscriptions hold each: those sold, cheapest first, then (unless
    `for_sale`) the retired ones."""
    held = (
        select(Subscription.plan_id, func.count().label("n"))
        .where(Subscription.status.in_(HELD))
        .group_by(Subscription.plan_id)
        .subquery()
    )
    query = select(Plan, func.coalesce(held.c.n, 0)).outerjoin(held, held.c.plan_id == Plan.id)
    if for_sale:
        query = query.where(Plan.active)
    rows = session.execute(query.order_by(Plan.active.desc(), Plan.price, Plan.code)).all()
    return [PlanFigures(plan, n) for plan, n in rows]


# --- subscribing and cancelling ----------------------------------------------------------------------


@dataclass(frozen=True)
class Subscribed:
    """A subscription as the API answers it, with the person's money after the call."""

    subscription: Subscription
    plan: Plan
    money: Funds


def subscribe(session: Session, ctx: Context, user_id: object, plan_code: object) -> Subscribed:
    """Subscribe a person to a plan: an `active` subscription with auto-renew on, its first period
    from now. One transaction: locks the plan (shared) and the person's account; refuses a second
    subscription to a plan the person holds (AlreadySubscribed, naming it: nothing is charged); then
    sells period 1 (`sell_period`: the price charged through the charge engine, the allowance
    granted as a plan lot). Audited `plan.subscribed`. Raises InvalidRequest, PlanNotFound,
    PlanRetired, UserNotFound, AlreadySubscribed, and the charge's refusals (InsufficientBalance:
    its audit row is kept, nothing else; AccountDisabled)."""
    person = validation.uuid_of(user_id, "user_id")
    with atomic(session):
        plan = plan_by_code(session, plan_code, for_sale=True)
        lock_account(session, person, ctx)  # UserNotFound; this person's subscribes one after the other
        held = session.scalar(
            select(Subscription.id).where(
                Subscription.user_id == person, Subscription.plan_id == plan.id, Subscription.status.in_(HELD)
            )
        )
        if held is not None:
            raise AlreadySubscribed(held)
        now, tz = ctx.now(), person_zone(session, person, ctx)
        ends = add_periods(now, 1, plan.period, tz)
        sub = Subscription(
            id=uuid.uuid4(),
            user_id=person,
            plan_id=plan.id,
            status=SubscriptionStatus.ACTIVE,
            auto_renew=True,
            timezone=tz.key,
            started_at=now,
            current_period_start=now,
            current_period_end=ends,
            periods=1,
            created_at=now,
            updated_at=now,
        )
        session.add(sub)
        session.flush()
        sell_period(session, ctx, sub, plan, n=1, starts_at=now, ends_at=ends)
        record_audit(session, "plan.subscribed", ctx=ctx, user_id=person, details=_described(sub, plan))
    return Subscribed(sub, plan, funds(session, person, ctx.now()))


def sell_period(
    session: Session, ctx: Context, sub: Subscription, plan: Plan, *, n: int, starts_at: datetime, ends_at: datetime
) -> SubscriptionPeriod:
    """In the caller's transaction: charge period `n` of `sub` at the plan's price (model
    `plan:<code>`, request id `subscription:<id>:<n>`, through the charge engine: its locks,
    spending order and refusals), then grant the allowance as a plan lot expiring at `ends_at`,
    its ledger entry naming the period. Returns the period."""
    request = ChargeRequest(
        user_id=sub.user_id,
        amount=plan.price,
        model=f"plan:{plan.code}",
        request_id=f"subscription:{sub.id}:{n}",
        params={"subscription_id": str(sub.id), "period": n},
    )
    charged = charge_within(session, request, ctx)
    if charged.replayed:  # a period is charged in the transaction that records it: never before
        raise RuntimeError(f"{request.request_id} was charged without its period")
    period = SubscriptionPeriod(
        subscription_id=sub.id,
        n=n,
        starts_at=starts_at,
        ends_at=ends_at,
        price=plan.price,
        allowance=plan.allowance,
        usage_log_id=charged.usage.id,
        created_at=ctx.now(),
    )
    session.add(period)
    session.flush()
    credit(
        session,
        user_id=sub.user_id,
        amount=plan.allowance,
        kind=LedgerKind.PLAN,
        ctx=ctx,
        action="plan.granted",
        details={"subscription_id": str(sub.id), "plan": plan.code, "period": n},
        memo=f"{plan.code} #{n}",
        expires_at=ends_at,
        subscription_period_id=period.id,
    )
    return period


def _described(sub: Subscription, plan: Plan) -> dict[str, object]:
    """A subscription as its audit rows tell it."""
    return {
        "subscription_id": str(sub.id),
        "plan": plan.code,
        "period": sub.periods,
        "price": to_api(plan.price),
        "allowance": to_api(plan.allowance),
        "current_period_end": sub.current_period_end.isoformat(),
    }


def cancel(session: Session, ctx: Context, subscription_id: object, *, user_id: uuid.UUID | None = None) -> Subscribed:
    """Turn a subscription's auto-renew off: `cancelled`, the allowance kept until the period ends
    (then the job lapses it). A cancelled or lapsed one is answered as it is (nothing to do). With
    `user_id` (a person's own page), another person's subscription is not found. Locks the
    subscription; audited `plan.cancelled`. Raises SubscriptionNotFound."""
    missing = SubscriptionNotFound()
    wanted = validation.uuid_of(subscription_id, "subscription_id", error=missing)
    with atomic(session):
        sub = lock(session, Subscription, Subscription.id == wanted)
        if sub is None or (user_id is not None and sub.user_id != user_id):
            raise missing
        if sub.status is SubscriptionStatus.ACTIVE:
            now = ctx.now()
            sub.move(SubscriptionStatus.CANCELLED)
            sub.cancelled_at = sub.updated_at = now
            record_audit(session, "plan.cancelled", ctx=ctx, user_id=sub.user_id, details=_described(sub, sub.plan))
    return Subscribed(sub, sub.plan, funds(session, sub.user_id, ctx.now()))


# --- the job ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenewalRun:
    renewed: int
    lapsed: int


def renew_due(session: Session, ctx: Context) -> RenewalRun:
    """The job: each subscription whose period has ended (at the context's time), active or
    cancelled, in the order their periods ended, in a transaction of its own: locked SKIP LOCKED
    (two runs never take one subscription; the other run passes it by) and still due under the
    lock, then renewed or lapsed (`renew_or_lapse`). A subscription whose renewal fails otherwise
    (a fault, not a refusal) is logged and left for the next run. Returns what it did."""
    now = ctx.now()
    renewed = lapsed = 0
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        query = select(Subscription.current_period_end, Subscription.id).where(
            Subscription.status.in_(HELD), Subscription.current_period_end <= now
        )
        if after is not None:
            query = query.where(
                (Subscription.current_period_end, Subscription.id) > after  # type: ignore[operator]
            )
        due = session.execute(query.order_by(Subscription.current_period_end, Subscription.id).limit(BATCH)).all()
        session.commit()
        for _end, sub_id in due:
            try:
                outcome = _renew_one(session, ctx, sub_id, now)
            except Exception:  # a fault in one subscription must not stop the others' renewals
                log.exception("subscription not renewed", extra={"fields": {"subscription_id": str(sub_id)}})
                continue
            renewed += outcome == "renewed"
            lapsed += outcome == "lapsed"
        if len(due) < BATCH:
            return RenewalRun(renewed, lapsed)
        after = (due[-1][0], due[-1][1])


def _renew_one(session: Session, ctx: Context, sub_id: uuid.UUID, now: datetime) -> str | None:
    with atomic(session):
        sub = session.scalars(
            select(Subscription)
            .where(
                Subscription.id == sub_id,
                Subscription.status.in_(HELD),
                Subscription.current_period_end <= now,
            )
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        ).one_or_none()
        if sub is None:  # another run has it, or had it
            return None
        return renew_or_lapse(session, ctx, sub)


def renew_or_lapse(session: Session, ctx: Context, sub: Subscription) -> str:
    """In the caller's transaction, the locked subscription whose period has ended: lapse it when it
    is cancelled or its plan retired; else sell its next period (in a savepoint) and say so
    (`subscription.renewed`), or, when the charge is refused for lack of money, a disabled account
    or a spending limit, lapse it for that reason (the refusal's audit row kept). Returns
    "renewed" or "lapsed"."""
    plan = session.scalars(
        select(Plan).where(Plan.id == sub.plan_id).with_for_update(read=True).execution_options(populate_existing=True)
    ).one()
    # The account, outside the savepoint: what expired by now (the period's own allowance) is written
    # whether the subscription renews or lapses, and the event's figures are the locked account's.
    lock_account(session, sub.user_id, ctx)
    if sub.status is SubscriptionStatus.CANCELLED:
        return _lapse(session, ctx, sub, plan, LapseReason.CANCELLED)
    if not plan.active:
        return _lapse(session, ctx, sub, plan, LapseReason.PLAN_RETIRED)
    starts, ends = next_period(sub, plan.period, ctx.now())
    n = sub.periods + 1
    try:
        with session.begin_nested():
            period = sell_period(session, ctx, sub, plan, n=n, starts_at=starts, ends_at=ends)
    except LedgerError as refused:
        reason = LAPSES_FOR.get(refused.code)
        if reason is None:
            raise
        if refused.audit_row is not None:
            session.add(refused.audit_row)
        keep = getattr(refused, "also_keep", None)  # what the refusal writes beside its audit row
        if keep is not None:
            keep(session)
        return _lapse(session, ctx, sub, plan, reason)
    sub.periods, sub.current_period_start, sub.current_period_end = n, starts, ends
    sub.updated_at = ctx.now()
    record_audit(session, "plan.renewed", ctx=ctx, user_id=sub.user_id, details=_described(sub, plan))
    emit_change(
        session,
        EventType.SUBSCRIPTION_RENEWED,
        user_id=sub.user_id,
        subscription_id=sub.id,
        plan=plan.code,
        period=n,
        amount=period.price,
        allowance=period.allowance,
        usage_id=period.usage_log_id,
        current_period_start=starts,
        current_period_end=ends,
    )
    return "renewed"


def _lapse(session: Session, ctx: Context, sub: Subscription, plan: Plan, reason: LapseReason) -> str:
    """End the subscription at its period's end, for `reason`: audited `plan.lapsed`, event
    `subscription.lapsed` (with the person's money as it is)."""
    sub.move(SubscriptionStatus.LAPSED)
    sub.lapse_reason, sub.lapsed_at, sub.updated_at = reason, sub.current_period_end, ctx.now()
    details = {**_described(sub, plan), "reason": reason.value}
    record_audit(session, "plan.lapsed", ctx=ctx, user_id=sub.user_id, details=details)
    money = funds(session, sub.user_id, ctx.now())
    emit(
        session,
        EventType.SUBSCRIPTION_LAPSED,
        user_id=sub.user_id,
        balance=money.balance,
        available=money.available,
        subscription_id=sub.id,
        plan=plan.code,
        reason=reason.value,
        periods=sub.periods,
        ended_at=sub.current_period_end,
    )
    return "lapsed"


# --- what pages show ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holding:
    """A subscription a person holds, as /plans shows it: its current period and what is left of
    that period's allowance (nothing once the period has ended)."""

    subscription: Subscription
    plan: Plan
    period: SubscriptionPeriod
    left: Decimal


def holdings(session: Session, user_id: uuid.UUID, now: datetime) -> list[Holding]:
    """The person's active and cancelled subscriptions, the soonest to end first."""
    rows = session.execute(
        select(Subscription, Plan, SubscriptionPeriod, CreditLot)
        .join(Plan, Plan.id == Subscription.plan_id)
        .join(
            SubscriptionPeriod,
            (SubscriptionPeriod.subscription_id == Subscription.id) & (SubscriptionPeriod.n == Subscription.periods),
        )
        .join(LedgerEntry, LedgerEntry.subscription_period_id == SubscriptionPeriod.id)
        .join(CreditLot, CreditLot.ledger_entry_id == LedgerEntry.id)
        .where(Subscription.user_id == user_id, Subscription.status.in_(HELD))
        .order_by(Subscription.current_period_end, Subscription.id)
    ).all()
    return [
        Holding(sub, plan, period, lot.remaining if lot.expires_at and lot.expires_at > now else Decimal(0))
        for sub, plan, period, lot in rows
    ]


def lapsed_for_money(session: Session, user_id: uuid.UUID, now: datetime) -> Subscription | None:
    """The person's subscription that lapsed for lack of money in the last LAPSE_BANNER_DAYS, of a
    plan they do not hold again (the pages' banner offers a top-up), the newest; else None."""
    lapsed = Subscription.__table__.alias("lapsed")
    held_again = (
        select(Subscription.id)
        .where(Subscription.user_id == user_id, Subscription.plan_id == lapsed.c.plan_id, Subscription.status.in_(HELD))
        .exists()
    )
    found = session.execute(
        select(lapsed.c.id)
        .where(
            lapsed.c.user_id == user_id,
            lapsed.c.lapse_reason == LapseReason.INSUFFICIENT_BALANCE.value,
            lapsed.c.lapsed_at > now - timedelta(days=LAPSE_BANNER_DAYS),
            ~held_again,
        )
        .order_by(lapsed.c.lapsed_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    return session.get(Subscription, found) if found is not None else None
