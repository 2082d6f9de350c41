"""The back office's operations on people (SPEC 13): find them, see their whole picture, adjust
their balance, sign them out everywhere, disable and enable them.

Every action takes the admin and a reason, previews its effect for the confirmation step, acts in
one transaction, and writes an audit row with actor `admin`, the admin's id and the reason on the
person concerned (their own history shows what happened, not who: pages show the action only).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from ledger import validation
from ledger.config import Settings
from ledger.db import atomic, get_by_id
from ledger.errors import InsufficientBalance, InvalidRequest, NotFound
from ledger.i18n import N_
from ledger.models import (
    Actor,
    AuditLog,
    EventType,
    Hold,
    InviteRelation,
    LedgerEntry,
    LedgerKind,
    PaymentTransaction,
    UsageLog,
    User,
    UserSession,
)
from ledger.money import MAX_CHARGE, parse_amount
from ledger.services.audit import record_audit
from ledger.services.books.accounts import Funds, funds, post
from ledger.services.context import Context, reason_of
from ledger.services.events import emit_change
from ledger.services.people.profile import username_key
from ledger.services.people.sign_in import active_sessions, revoke_sessions

PAGE = 25


def person(session: Session, user_id: object) -> User:
    """The person of an admin page; NotFound for an unknown or malformed id."""
    return get_by_id(session, User, user_id, "user_id", NotFound(N_("There is no such person.")))


def emails_of(session: Session, user_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """The email of each person named (for pages that list rows of many people)."""
    wanted = {i for i in user_ids if i is not None}
    if not wanted:
        return {}
    return {uid: email for uid, email in session.execute(select(User.id, User.email).where(User.id.in_(wanted)))}


def search_people(session: Session, query: object, *, page: int = 1) -> tuple[list[User], int]:
    """People whose email, username, id or invite code matches `query` (all of them without one),
    newest first, PAGE at a time; and how many match."""
    text = query.strip() if isinstance(query, str) else ""
    wanted = select(User)
    if text and validation.is_storable_text(text):
        needle = text.lower()
        matches = [
            func.lower(User.email).contains(needle, autoescape=True),
            func.lower(User.username).contains(needle, autoescape=True),
            # "admin" finds "ａｄｍｉｎ" and "ɑdmin"; a set-aside key's " <id>" is no part of the name
            func.split_part(User.username_key, " ", 1).contains(username_key(text), autoescape=True),
            User.invite_code == needle,
        ]
        with contextlib.suppress(ValueError):
            matches.append(User.id == uuid.UUID(text))
        wanted = wanted.where(or_(*matches))
    elif text:
        return [], 0
    total = session.scalar(select(func.count()).select_from(wanted.subquery())) or 0
    people = session.scalars(
        wanted.order_by(User.created_at.desc(), User.id).limit(PAGE).offset((max(page, 1) - 1) * PAGE)
    ).all()
    return list(people), total


@dataclass(frozen=True)
class Adjustment:
    """An adjustment as the confirmation step shows it: the balance before and after."""

    person: User
    amount: Decimal  # signed: negative takes money away
    balance: Decimal
    available: Decimal
    expires_at: datetime | None = None  # a credit's own expiry (SPEC 20); None: GRANT_EXPIRY_DAYS

    @property
    def balance_after(self) -> Decimal:
        return self.balance + self.amount


def preview_adjust(
    session: Session,
    admin: Context,
    user_id: object,
    amount: object,
    *,
    debit: bool,
    expires_at: object = None,
    tz: ZoneInfo | None = None,
) -> Adjustment:
    """`adjust`'s check, without writing: an adjustment (a positive exact amount; a debit at most
    the available amount); a credit may expire at its own instant, in the future (ISO 8601, in
    `tz` without an offset), not a debit."""
    someone = person(session, user_id)
    value = parse_amount(amount, places=2, maximum=MAX_CHARGE)
    now = admin.now()
    zone = tz or (admin.settings or Settings()).timezone  # the site's, as the admin's pages show times
    expiry = validation.future_instant(expires_at, "expires_at", now=now, tz=zone)
    if debit and expiry is not None:
        raise InvalidRequest(N_("Only a credit can expire."), field="expires_at")
    money = funds(session, someone.id, now)
    if debit and value > money.available:
        raise InsufficientBalance(money.balance, money.available)
    return Adjustment(someone, -value if debit else value, money.balance, money.available, expiry)


def adjust(
    session: Session,
    admin: Context,
    user_id: object,
    amount: object,
    *,
    debit: bool,
    reason: object,
    expires_at: object = None,
    tz: ZoneInfo | None = None,
) -> Adjustment:
    """Credit or debit a person by hand (ledger kind `adjustment`), audited `balance.adjusted` with
    the admin and the reason. A debit never takes more than the available amount (holds stay
    covered); a credit is given money that expires at `expires_at`, else by GRANT_EXPIRY_DAYS."""
    why = reason_of(reason)
    planned = preview_adjust(session, admin, user_id, amount, debit=debit, expires_at=expires_at, tz=tz)
    with atomic(session):
        entry = post(  # a debit is checked again against the available amount, under the lock
            session,
            user_id=planned.person.id,
            amount=planned.amount,
            kind=LedgerKind.ADJUSTMENT,
            ctx=admin,
            action="balance.adjusted",
            memo=why[:200],
            details=admin.admin_details(why),
            expires_at=planned.expires_at,
        )
        # The SaaS hears of it without the admin's name or reason (SPEC 13: those stay in the back office),
        # by the ledger entry's id (its resource, SPEC 16; the flush gives the entry its id).
        session.flush()
        emit_change(
            session, EventType.BALANCE_ADJUSTED, user_id=planned.person.id, entry_id=entry.id, amount=planned.amount
        )
    before = entry.balance_after - planned.amount
    return Adjustment(planned.person, planned.amount, before, planned.available, planned.expires_at)


def preview_sign_out_everywhere(session: Session, admin: Context, user_id: object) -> tuple[User, int]:
    """`sign_out_everywhere`'s check, without writing: the person and how many sessions would end."""
    someone = person(session, user_id)
    return someone, live_sessions(session, someone.id)


def sign_out_everywhere(session: Session, admin: Context, user_id: object, *, reason: object) -> int:
    """End every login session of a person (each browser is signed out on its next request)."""
    why = reason_of(reason)
    someone = person(session, user_id)
    with atomic(session):
        count = revoke_sessions(session, someone.id, admin.now())
        record_audit(
            session,
            "auth.signed_out_everywhere",
            ctx=admin,
            user_id=someone.id,
            details=admin.admin_details(why, revoked=count),
        )
    return count


def live_sessions(session: Session, user_id: uuid.UUID) -> int:
    return (
        session.scalar(select(func.count()).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None)))
        or 0
    )


def preview_set_disabled(session: Session, admin: Context, user_id: object, *, disabled: bool) -> User:
    """The person to disable (or enable); InvalidRequest when the account is already so."""
    someone = person(session, user_id)
    if (someone.disabled_at is not None) == disabled:
        raise InvalidRequest(N_("Nothing to change: the account is already so."), field="reason")
    return someone


def set_disabled(session: Session, admin: Context, user_id: object, *, disabled: bool, reason: object) -> User:
    """Disable a person (they cannot sign in, charges and holds answer 403; their sessions end;
    their money stays) or enable them again."""
    why = reason_of(reason)
    someone = preview_set_disabled(session, admin, user_id, disabled=disabled)
    with atomic(session):
        when = admin.now() if disabled else None
        session.execute(update(User).where(User.id == someone.id).values(disabled_at=when))
        ended = revoke_sessions(session, someone.id, admin.now()) if disabled else 0
        record_audit(
            session,
            "user.disabled" if disabled else "user.enabled",
            ctx=admin,
            user_id=someone.id,
            details=admin.admin_details(why, sessions_ended=ended),
        )
    someone.disabled_at = when
    return someone


def set_admin(session: Session, admin: Context, email: object, *, on: bool) -> User:
    """Give or take the admin role (`flask users set-admin`)."""
    address = validation.text(email, "email", max_length=254).lower()
    someone = session.scalar(select(User).where(User.email == address))
    if someone is None:
        raise NotFound(N_("There is no such person."))
    with atomic(session):
        session.execute(update(User).where(User.id == someone.id).values(is_admin=on))
        details = admin.admin_details("set-admin", is_admin=on)
        record_audit(session, "user.admin_role", ctx=admin, user_id=someone.id, details=details)
    someone.is_admin = on
    return someone


# --- what an admin reads ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Picture:
    """A person's whole picture for the back office."""

    person: User
    money: Funds  # as the person's own pages show it
    entries: list[LedgerEntry]
    orders: list[PaymentTransaction]
    usage: list[UsageLog]
    holds: list[Hold]
    inviter: User | None
    invitees: int
    live_sessions: list[UserSession]
    audit: list[AuditLog]


def picture(session: Session, user_id: object, *, now: datetime, recent: int = 20) -> Picture:
    someone = person(session, user_id)

    def latest(model: Any, order: Any) -> list[Any]:
        """The newest rows first; rows of one transaction share their time, so the id breaks ties
        (the same page every time)."""
        newest = [order.desc()] + ([] if order is model.id else [model.id.desc()])
        return list(session.scalars(select(model).where(model.user_id == someone.id).order_by(*newest).limit(recent)))

    inviter = session.scalar(
        select(User)
        .join(InviteRelation, InviteRelation.inviter_id == User.id)
        .where(InviteRelation.invitee_id == someone.id)
    )
    invitees = session.scalar(select(func.count()).where(InviteRelation.inviter_id == someone.id)) or 0
    return Picture(
        person=someone,
        money=funds(session, someone.id, now),
        entries=latest(LedgerEntry, LedgerEntry.id),
        orders=latest(PaymentTransaction, PaymentTransaction.created_at),
        usage=latest(UsageLog, UsageLog.created_at),
        holds=latest(Hold, Hold.created_at),
        inviter=inviter,
        invitees=invitees,
        live_sessions=active_sessions(session, someone.id),
        audit=latest(AuditLog, AuditLog.id),
    )


def audit_trail(
    session: Session,
    *,
    person_query: object = None,
    action: object = None,
    actor: object = None,
    since: date | None = None,
    until: date | None = None,
    tz: ZoneInfo,
    limit: int = 100,
) -> list[AuditLog]:
    """Audit rows, newest first, filtered by person (email or id), action (prefix), actor, dates."""
    wanted = select(AuditLog)
    who = person_query.strip() if isinstance(person_query, str) else ""
    if who:
        people = [u.id for u in search_people(session, who)[0]]
        wanted = wanted.where(AuditLog.user_id.in_(people))
    what = action.strip() if isinstance(action, str) else ""
    if what and validation.is_storable_text(what):
        wanted = wanted.where(AuditLog.action.startswith(what, autoescape=True))
    if actor in tuple(Actor):
        wanted = wanted.where(AuditLog.actor == actor)
    if since:
        wanted = wanted.where(AuditLog.created_at >= datetime.combine(since, time.min, tzinfo=tz))
    if until:
        wanted = wanted.where(AuditLog.created_at < datetime.combine(until + timedelta(days=1), time.min, tzinfo=tz))
    return list(session.scalars(wanted.order_by(AuditLog.id.desc()).limit(limit)))
