"""What a person sees first: balance (by kind of money), spending today and over 30 days, recent activity.

The dashboard page and `GET /api/billing/summary` both read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger.models import PaymentTransaction, UsageLog, User
from ledger.money import CURRENCY
from ledger.services.books.holds import OnHold, money_on_hold
from ledger.services.books.lots import Kinds, kinds_of

RECENT = 5


@dataclass(frozen=True)
class Summary:
    user: User
    on_hold: OnHold  # the balance, and what is set aside from it: active holds, pending refunds
    currency: str
    spent_today: Decimal
    spent_30_days: Decimal
    count_30_days: int
    recent_usage: list[UsageLog]
    recent_topups: list[PaymentTransaction]
    kinds: Kinds  # the balance by kind of money (paid, given, plan) and what expires next (SPEC 20)

    @property
    def balance(self) -> Decimal:
        return self.on_hold.funds.balance

    @property
    def available(self) -> Decimal:
        return self.on_hold.funds.available


def start_of_day(now: datetime, tz: ZoneInfo, days_back: int = 0) -> datetime:
    """Midnight in the person's time zone, `days_back` days before `now`'s day, as an aware datetime."""
    day = now.astimezone(tz).date() - timedelta(days=days_back)
    return datetime.combine(day, time.min, tzinfo=tz)


def account_summary(session: Session, user: User, *, tz: ZoneInfo, now: datetime) -> Summary:
    """Balance, money on hold and spending of one person; days are counted in `tz` (today is the 1st of 30 days)."""
    today, month = start_of_day(now, tz), start_of_day(now, tz, days_back=29)
    spent_today, spent_30, count_30 = session.execute(
        select(
            func.coalesce(func.sum(UsageLog.amount).filter(UsageLog.created_at >= today), 0),
            func.coalesce(func.sum(UsageLog.amount), 0),
            func.count(),
        ).where(UsageLog.user_id == user.id, UsageLog.created_at >= month)
    ).one()
    recent = session.scalars(
        select(UsageLog)
        .where(UsageLog.user_id == user.id)
        .order_by(UsageLog.created_at.desc(), UsageLog.id.desc())
        .limit(RECENT)
    ).all()
    topups = session.scalars(
        select(PaymentTransaction)
        .where(PaymentTransaction.user_id == user.id)
        .order_by(PaymentTransaction.created_at.desc(), PaymentTransaction.id.desc())
        .limit(RECENT)
    ).all()
    return Summary(
        user=user,
        on_hold=money_on_hold(session, user.id, now=now),
        currency=CURRENCY,
        spent_today=Decimal(spent_today),
        spent_30_days=Decimal(spent_30),
        count_30_days=count_30,
        recent_usage=list(recent),
        recent_topups=list(topups),
        kinds=kinds_of(session, user.id, now),
    )
