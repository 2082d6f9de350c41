"""The back office's first page (SPEC 13): money in and out today, in 7 and in 30 days, by method;
pending orders, money on hold, refused payment notices, and the charges of each of the last 30 days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Date, cast, func, select
from sqlalchemy.orm import Session

from ledger.i18n import N_
from ledger.models import (
    Hold,
    HoldStatus,
    LedgerEntry,
    LedgerKind,
    NotifyRefusal,
    PaymentStatus,
    PaymentTransaction,
    PayType,
    UsageLog,
    User,
)
from ledger.services.books.summary import start_of_day


@dataclass(frozen=True)
class Figures:
    """Money and people over a period (the overview's rows)."""

    label: str
    topups: Decimal
    topups_by_method: dict[str, Decimal]  # pay_type -> top-ups credited with it (every method, 0 if none)
    charges: Decimal
    refunds: Decimal
    redemptions: Decimal
    people: int


@dataclass(frozen=True)
class Overview:
    periods: list[Figures]  # today, 7 days, 30 days
    pending_orders: int
    active_holds: int
    held: Decimal
    daily: list[tuple[date, Decimal]]  # charges per day, last 30 days
    refused_notifies: int = 0  # in the last 24 hours (SPEC 19: counted, not a row each)
    refusing_sources: int = 0  # from how many addresses


def overview(session: Session, *, tz: ZoneInfo, now: datetime) -> Overview:
    """The back office's first page: what came in and went out today, in 7 and in 30 days."""
    periods = []
    for label, days_back in ((N_("Today"), 0), (N_("7 days"), 6), (N_("30 days"), 29)):
        since = start_of_day(now, tz, days_back=days_back)
        sums = dict(
            session.execute(
                select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
                .where(LedgerEntry.created_at >= since)
                .group_by(LedgerEntry.kind)
            ).all()
        )
        joined = session.scalar(select(func.count()).where(User.created_at >= since)) or 0
        by_method = dict(
            session.execute(
                select(PaymentTransaction.pay_type, func.sum(LedgerEntry.amount))
                .join(PaymentTransaction, PaymentTransaction.id == LedgerEntry.payment_transaction_id)
                .where(LedgerEntry.kind == LedgerKind.TOPUP, LedgerEntry.created_at >= since)
                .group_by(PaymentTransaction.pay_type)
            ).all()
        )
        periods.append(
            Figures(
                label=label,
                topups=Decimal(sums.get(LedgerKind.TOPUP, 0)),
                topups_by_method={str(m): Decimal(by_method.get(m, 0)) for m in PayType},
                charges=-Decimal(sums.get(LedgerKind.USAGE, 0)),
                refunds=-Decimal(sums.get(LedgerKind.REFUND, 0)),
                redemptions=Decimal(sums.get(LedgerKind.REDEMPTION, 0)),
                people=joined,
            )
        )
    pending = session.scalar(select(func.count()).where(PaymentTransaction.status == PaymentStatus.PENDING)) or 0
    active = session.execute(
        select(func.count(), func.coalesce(func.sum(Hold.amount), 0)).where(
            Hold.status == HoldStatus.ACTIVE, Hold.expires_at > now
        )
    ).one()
    first = start_of_day(now, tz, days_back=29)
    day = cast(func.timezone(tz.key, UsageLog.created_at), Date)
    spent = dict(
        session.execute(select(day, func.sum(UsageLog.amount)).where(UsageLog.created_at >= first).group_by(day)).all()
    )
    days = [first.date() + timedelta(days=i) for i in range(30)]
    refused, sources = session.execute(
        select(func.coalesce(func.sum(NotifyRefusal.count), 0), func.count(NotifyRefusal.source.distinct())).where(
            NotifyRefusal.minute >= now - timedelta(hours=24)
        )
    ).one()
    return Overview(
        periods,
        pending,
        active[0],
        Decimal(active[1]),
        [(d, Decimal(spent.get(d, 0))) for d in days],
        refused_notifies=int(refused),
        refusing_sources=sources,
    )
