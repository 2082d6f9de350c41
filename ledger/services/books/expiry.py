"""The expiry job's side of credit lots (SPEC 20): write the expiry of every lot past its instant,
and tell the SaaS of the lots about to expire (`credit.expiring`, once a lot).

An expiry is written by whoever locks the account first: the next operation on it, or this job
(every minute, once however many workers run: a procrastinate queueing lock). Either way the lot
counted no more from its instant (`accounts.funds`, `lots.kinds_of`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.db import atomic
from ledger.errors import UserNotFound
from ledger.models import CreditLot, EventType
from ledger.services.books.accounts import funds, lock_account
from ledger.services.books.lots import NOTICE_DAYS_DEFAULT
from ledger.services.context import Context
from ledger.services.events import emit

BATCH = 500  # accounts (or lots) read at a time


@dataclass(frozen=True)
class ExpiryRun:
    accounts: int  # accounts whose due lots were looked at under their lock
    notices: int  # credit.expiring events written


def expire_credits(session: Session, ctx: Context) -> ExpiryRun:
    """The job: every account with a lot past its expiry (at the context's time) and money left is
    locked, one transaction each, which writes its expiries (`accounts.lock_account`: holds first,
    then lots, keeping what active holds need); then the notices. Returns what it did."""
    now = ctx.now()
    accounts, after = 0, uuid.UUID(int=0)
    while True:
        due = session.scalars(
            select(CreditLot.user_id)
            .where(CreditLot.remaining > 0, CreditLot.expires_at <= now, CreditLot.user_id > after)
            .group_by(CreditLot.user_id)
            .order_by(CreditLot.user_id)
            .limit(BATCH)
        ).all()
        session.commit()
        for user_id in due:
            with atomic(session):
                try:
                    lock_account(session, user_id, ctx)  # writes what is due, under the lock
                except UserNotFound:  # pragma: no cover - lots belong to accounts, never deleted
                    continue
            accounts += 1
        if len(due) < BATCH:
            return ExpiryRun(accounts, notify_expiring(session, ctx))
        after = due[-1]


def notify_expiring(session: Session, ctx: Context) -> int:
    """A credit.expiring event for each lot with money left that has entered its last
    CREDIT_EXPIRY_NOTICE_DAYS before expiry and was not told of yet: once a lot (`notified_at`),
    locked SKIP LOCKED so that two runs never tell of one lot twice. Returns how many."""
    now = ctx.now()
    window = now + timedelta(days=notice_days(ctx))
    told = 0
    while True:
        with atomic(session):
            lots = session.scalars(
                select(CreditLot)
                .where(
                    CreditLot.remaining > 0,
                    CreditLot.notified_at.is_(None),
                    CreditLot.expires_at > now,
                    CreditLot.expires_at <= window,
                )
                .order_by(CreditLot.expires_at, CreditLot.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            for lot in lots:
                tell_expiring(session, lot, now)
        told += len(lots)
        if len(lots) < BATCH:
            return told


def notice_days(ctx: Context) -> int:
    return ctx.settings.CREDIT_EXPIRY_NOTICE_DAYS if ctx.settings is not None else NOTICE_DAYS_DEFAULT


def tell_expiring(session: Session, lot: CreditLot, now: datetime) -> None:
    """Write the lot's credit.expiring event (the caller made sure it was not told of before)."""
    lot.notified_at = now
    money = funds(session, lot.user_id, now)
    emit(
        session,
        EventType.CREDIT_EXPIRING,
        user_id=lot.user_id,
        balance=money.balance,
        available=money.available,
        lot_id=lot.id,
        category=lot.category.value,
        amount=lot.remaining,
        expires_at=lot.expires_at,
    )
