"""Accounts for the SaaS's own backend (SPEC 25): create or find a person's account by email and
the SaaS's own id of them (`external_id`), look one up, and read their money.

The SaaS keeps its own sign-in, so an account made here has no password: its person comes in
through portal links (ledger.services.people.portal) until they set one on /account.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger import validation
from ledger.db import atomic
from ledger.errors import InvalidRequest, UserConflict, UserNotFound
from ledger.i18n import N_
from ledger.models import User
from ledger.services.audit import record_audit
from ledger.services.books.holds import money_on_hold
from ledger.services.books.lots import kinds_of
from ledger.services.context import Context
from ledger.services.people.profile import new_username
from ledger.services.people.sign_in import add_person, normalise_email

# What a call racing another may hit; the retry then finds the account, or refuses as a first call would.
UNIQUE_KEYS = ("uq_users_email", "uq_users_external_id", "uq_users_username_key", "uq_users_username_shape")
EXTERNAL_ID_MAX = 128
EXTERNAL_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # as the schema's check constraint says


@dataclass(frozen=True)
class Found:
    user: User
    created: bool  # True: made by this call (201); False: it existed (200)


@dataclass(frozen=True)
class AccountMoney:
    """A person's money as the backend reads it: the balance, what is set aside, what may be
    spent, and the balance by kind (SPEC 20)."""

    balance: Decimal
    held: Decimal
    available: Decimal
    paid: Decimal
    granted: Decimal
    plan: Decimal


def external_id_of(raw: object) -> str | None:
    """The SaaS's id of a person as sent (None when absent); InvalidRequest when it has another shape."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not EXTERNAL_ID.fullmatch(raw):
        raise InvalidRequest(
            N_("Send 1 to %(max)d characters of A-Z, a-z, 0-9 and . _ : -"), field="external_id", max=EXTERNAL_ID_MAX
        )
    return raw


def create_or_find_user(
    session: Session, *, email: object, external_id: object = None, username: object = None, ctx: Context
) -> Found:
    """The account with this email, made when there is none (no password, balance 0).

    Found by email: the same account (`created` False); one without an external_id yet takes the
    one sent. Raises UserConflict when the email's account has another external_id or the
    external_id is another account's; InvalidRequest for a bad field; UsernameTaken for a taken
    `username` (only read when the account is made). Locks the email's row while it decides, and
    two calls racing to make the same account end with one account: the loser finds it.
    """
    email = normalise_email(email)
    external = external_id_of(external_id)
    for last_try in (False, True):
        try:
            with atomic(session):
                return _create_or_find(session, email, external, username, ctx)
        except IntegrityError as exc:  # made, given this external_id or this username at the same instant
            if last_try or not any(key in str(exc.orig) for key in UNIQUE_KEYS):
                raise
    raise AssertionError("unreachable")


def _create_or_find(session: Session, email: str, external: str | None, username: object, ctx: Context) -> Found:
    # Both in one statement, so in one snapshot: read apart, a call committing in between could make
    # the email's account look like another one holding the external_id.
    keys = or_(User.email == email, User.external_id == external) if external else User.email == email
    rows = session.scalars(select(User).where(keys).with_for_update().execution_options(populate_existing=True)).all()
    user = next((row for row in rows if row.email == email), None)
    holder = next((row for row in rows if external and row.external_id == external), None)
    if holder is not None and holder is not user:
        raise UserConflict(field="external_id")
    if user is None:
        user = add_person(
            session, email=email, password_hash=None, external_id=external, username=new_username(session, username)
        )
        record_audit(
            session,
            "user.registered",
            ctx=ctx,
            user_id=user.id,
            details={"email": email, "external_id": external, "is_admin": False},
        )
        return Found(user, created=True)
    if external is not None and user.external_id != external:
        if user.external_id is not None:
            raise UserConflict(field="email")
        session.execute(update(User).where(User.id == user.id).values(external_id=external))
        user.external_id = external
        record_audit(session, "user.external_id_set", ctx=ctx, user_id=user.id, details={"external_id": external})
    return Found(user, created=False)


def find_user(session: Session, *, user_id: object = None, email: object = None, external_id: object = None) -> User:
    """The account with this id, email or external_id (exactly one given). Raises UserNotFound, or
    InvalidRequest when none or several are given or one has a shape no account has."""
    given = {"user_id": user_id, "email": email, "external_id": external_id}
    sent = [name for name, value in given.items() if value is not None]
    if len(sent) != 1:
        raise InvalidRequest(N_("Give exactly one of user_id, email or external_id."))
    if sent == ["user_id"]:
        where = User.id == validation.uuid_of(user_id, "user_id", error=UserNotFound())
    elif sent == ["email"]:
        try:  # as create_or_find_user stores it (an IDN domain, composed accents)
            where = User.email == normalise_email(email)
        except InvalidRequest:
            raise UserNotFound(N_("No account has this email.")) from None
    else:
        where = User.external_id == external_id_of(external_id)
    user = session.scalar(select(User).where(where))
    if user is None:
        raise UserNotFound(MISSING[sent[0]])
    return user


MISSING = {
    "user_id": UserNotFound.message,
    "email": N_("No account has this email."),
    "external_id": N_("No account has this external_id."),
}


def account_money(session: Session, user_id: uuid.UUID, *, now: datetime) -> AccountMoney:
    """The person's money at `now`, read without a lock (as pages read it)."""
    on_hold = money_on_hold(session, user_id, now=now, limit=0)
    kinds = kinds_of(session, user_id, now)
    funds = on_hold.funds
    return AccountMoney(funds.balance, funds.held, funds.available, kinds.paid, kinds.granted, kinds.plan)
