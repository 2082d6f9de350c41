"""People: sign-up, sign-in, the login sessions that a sign-out or a revocation ends, and passwords."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ledger import validation
from ledger.db import atomic
from ledger.errors import (
    AccountDisabled,
    EmailTaken,
    InvalidCredentials,
    InvalidRequest,
    NotFound,
    UserConflict,
    WrongPassword,
)
from ledger.i18n import N_
from ledger.models import BillingAccount, User, UserSession
from ledger.services.audit import record_audit, refusal
from ledger.services.context import Context
from ledger.services.growth.invites import bind_in_transaction

EMAIL_MAX_LENGTH = 254
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
# No 0/o, 1/l/i: invite codes are read aloud and typed from screenshots.
INVITE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
INVITE_CODE_LENGTH = 8
# last_seen_at is written at most this often, not on every request.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass
class _Hashing:
    """How passwords are hashed (PASSWORD_HASH: werkzeug's scrypt by default, slow on purpose), and
    the hash checked against when an email is unknown, so that a failed login takes as long either way."""

    method: str = "scrypt"
    dummy: str = field(default_factory=lambda: generate_password_hash("not-a-real-password"))


_hashing = _Hashing()


def use_password_hash(method: str) -> None:
    """Hash new passwords with werkzeug's `method` from now on, in this process (create_app sets
    PASSWORD_HASH; tests use a fast one). A password hashed another way still checks: the method
    is written in each hash."""
    if method != _hashing.method:
        _hashing.method, _hashing.dummy = method, generate_password_hash("not-a-real-password", method=method)


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=_hashing.method)


def normalise_email(raw: object) -> str:
    """The email as stored: validated, lower-cased (emails are unique case-insensitively)."""
    message = N_("Enter a valid email address, such as name@example.com.")
    email = validation.text(raw, "email", max_length=EMAIL_MAX_LENGTH, message=message)
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise InvalidRequest(message, field="email") from None


def check_password_rules(password: object, field: str = "password") -> str:
    return validation.text(
        password,
        field,
        min_length=PASSWORD_MIN_LENGTH,
        max_length=PASSWORD_MAX_LENGTH,
        strip=False,
        message=N_("Choose a password of %(min)d to %(max)d characters."),
    )


def new_invite_code() -> str:
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_CODE_LENGTH))


def add_person(
    session: Session,
    *,
    email: str,
    password_hash: str | None,
    is_admin: bool = False,
    external_id: str | None = None,
    username: tuple[str, str, str] | None = None,
) -> User:
    """A new person and their billing account (balance 0), in the caller's transaction; the email
    checked already. `username`: the name with its two keys (profile.username_keys)."""
    name, key, shape = username or (None, None, None)
    user = User(
        id=uuid.uuid4(),
        email=email,
        password_hash=password_hash,
        invite_code=new_invite_code(),
        is_admin=is_admin,
        external_id=external_id,
        username=name,
        username_key=key,
        username_shape=shape,
    )
    session.add(user)
    session.flush()  # the account references the user
    session.add(BillingAccount(user_id=user.id, balance=0))
    return user


def register_user(
    session: Session,
    *,
    email: object,
    password: object,
    ctx: Context,
    is_admin: bool = False,
    invite_code: object = None,
    without_password: bool = False,
    external_id: str | None = None,
) -> User:
    """Create a person with their billing account (balance 0) and invite code, in one transaction.

    With `invite_code`, the person is bound to its owner in the same transaction (nothing is
    created if the code is refused). `without_password` (the console's, for the SaaS's backend,
    SPEC 25): no password until the person sets one; `external_id`: the SaaS's id of them, checked
    by the caller (backend_accounts.external_id_of). Raises InvalidRequest (bad email or password),
    EmailTaken, UserConflict (the external_id is another account's), or the refusals of
    invites.bind_invite; writes audit rows.
    """
    email = normalise_email(email)
    # Hashing is slow on purpose: outside the transaction.
    password_hash = None if without_password else hash_password(check_password_rules(password))
    try:
        with atomic(session):
            if session.scalar(select(User.id).where(User.email == email)) is not None:
                raise EmailTaken(field="email")
            user = add_person(
                session, email=email, password_hash=password_hash, is_admin=is_admin, external_id=external_id
            )
            if isinstance(invite_code, str) and invite_code.strip():
                bind_in_transaction(session, invitee=user, code=invite_code, ctx=ctx, field="invite")
            record_audit(
                session,
                "user.registered",
                ctx=ctx,
                user_id=user.id,
                details={"email": email, "is_admin": is_admin, "external_id": external_id},
            )
    except IntegrityError as exc:  # a sign-up with the same email (or external_id) won the race
        if "uq_users_email" in str(exc.orig):
            raise EmailTaken(field="email") from None
        if "uq_users_external_id" in str(exc.orig):
            raise UserConflict(field="external_id") from None
        raise
    return user


def authenticate(session: Session, *, email: object, password: object, ctx: Context) -> User:
    """Return the person with this email and password, or audit the failure and raise InvalidCredentials.

    The error does not say whether the email exists (no account enumeration); input that could
    match no account (not text, NUL, invalid Unicode) is a failed sign-in like any other.
    """
    typed = email.strip().lower() if isinstance(email, str) else ""
    storable = validation.is_storable_text(typed) and typed.isprintable() and len(typed) <= EMAIL_MAX_LENGTH
    secret = password if isinstance(password, str) and validation.is_storable_text(password) else None
    with atomic(session):
        user = session.scalar(select(User).where(User.email == typed)) if storable and typed else None
        # A person without a password (made by the SaaS's backend) is checked against the dummy, and fails.
        known = user.password_hash if user is not None else None
        matches = check_password_hash(known or _hashing.dummy, secret or "") and bool(known)
        if user is None or secret is None or not matches:
            raise refusal(
                InvalidCredentials(field="password"),
                "auth.login_failed",
                ctx=ctx,
                user_id=user.id if user else None,
                details={"email": typed if storable else None},
            )
        if user.disabled_at is not None:  # said only to whoever knows the password
            raise refusal(AccountDisabled(field="email"), "auth.login_refused", ctx=ctx, user_id=user.id)
    return user


# --- login sessions -------------------------------------------------------------------------------


def start_session(session: Session, user: User, *, ctx: Context) -> UserSession:
    """Record a login: one user_sessions row, whose id the browser's cookie carries."""
    with atomic(session):
        return add_login(session, user, ctx=ctx)


def add_login(session: Session, user: User, *, ctx: Context, **details: object) -> UserSession:
    """A login session row and its audit row (`auth.login`), in the caller's transaction."""
    login = UserSession(id=uuid.uuid4(), user_id=user.id, ip=ctx.ip, user_agent=ctx.user_agent)
    session.add(login)
    session.flush()  # the row exists for what refers to it (a portal token)
    record_audit(session, "auth.login", ctx=ctx, user_id=user.id, details={"session_id": str(login.id), **details})
    return login


def load_session_user(session: Session, *, user_id: str, session_id: object, now: datetime) -> User | None:
    """The person of a live (not revoked) login session, or None; notes when it was last seen (`now`)."""
    try:
        uid, sid = validation.uuid_of(user_id, "user_id"), validation.uuid_of(session_id, "session_id")
    except InvalidRequest:
        return None
    row = session.execute(
        select(User, UserSession.last_seen_at)
        .join(UserSession, UserSession.user_id == User.id)
        .where(User.id == uid, UserSession.id == sid, UserSession.revoked_at.is_(None), User.disabled_at.is_(None))
    ).one_or_none()
    if row is None:
        return None
    user, last_seen_at = row
    if now - last_seen_at > LAST_SEEN_RESOLUTION:
        with atomic(session):
            session.execute(update(UserSession).where(UserSession.id == sid).values(last_seen_at=now))
    return user


def active_sessions(session: Session, user_id: uuid.UUID) -> list[UserSession]:
    return list(
        session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
            .order_by(UserSession.last_seen_at.desc(), UserSession.id)  # the id: the same order every time
        )
    )


def revoke_sessions(
    session: Session, user_id: uuid.UUID, now: datetime, *, only: uuid.UUID | None = None, keep: object = None
) -> int:
    """Revoke the person's live login sessions at `now` (all; `only` that one; or all but `keep`) in
    the caller's transaction. Returns how many."""
    where = [UserSession.user_id == user_id, UserSession.revoked_at.is_(None)]
    if only is not None:
        where.append(UserSession.id == only)
    elif (keep_id := _uuid_or_none(keep)) is not None:
        where.append(UserSession.id != keep_id)
    return session.execute(update(UserSession).where(*where).values(revoked_at=now)).rowcount


def revoke_session(
    session: Session, *, user_id: uuid.UUID, session_id: object, ctx: Context, action: str = "auth.session_revoked"
) -> uuid.UUID:
    """Sign out one of the person's own live login sessions (effective on that browser's next
    request), audited as `action`; returns its id. NotFound when the person has no such live session."""
    missing = NotFound(N_("There is no such session, or it has already ended."))
    sid = validation.uuid_of(session_id, "session_id", error=missing)
    with atomic(session):
        if not revoke_sessions(session, user_id, ctx.now(), only=sid):
            raise missing
        record_audit(session, action, ctx=ctx, user_id=user_id, details={"session_id": str(sid)})
    return sid


def end_session(session: Session, *, user_id: uuid.UUID, session_id: object, ctx: Context) -> None:
    """Sign out: revoke this browser's login session (nothing to do when it is already revoked)."""
    with contextlib.suppress(NotFound):
        revoke_session(session, user_id=user_id, session_id=session_id, ctx=ctx, action="auth.logout")


def revoke_other_sessions(session: Session, *, user_id: uuid.UUID, keep: object, ctx: Context) -> int:
    """Sign out every login session of the person but `keep` (this browser's). Returns how many."""
    with atomic(session):
        count = revoke_sessions(session, user_id, ctx.now(), keep=keep)
        record_audit(session, "auth.other_sessions_revoked", ctx=ctx, user_id=user_id, details={"revoked": count})
    return count


def change_password(session: Session, user: User, *, current: object, new: object, keep: object, ctx: Context) -> int:
    """Change the password (the current one is required) and sign out every other session. A
    person who has none yet (an account the SaaS's backend made, SPEC 25) sets their first one,
    with no current password to give: they came in through a portal link the SaaS vouched for.

    Raises WrongPassword (audited) or InvalidRequest (new one too short or long). Returns the
    number of other sessions signed out.
    """
    new = check_password_rules(new, field="new")
    first = user.password_hash is None
    with atomic(session):
        if not first and (
            not isinstance(current, str)
            or not validation.is_storable_text(current)
            or not check_password_hash(user.password_hash, current)
        ):
            raise refusal(WrongPassword(field="current"), "auth.password_change_failed", ctx=ctx, user_id=user.id)
    password_hash = hash_password(new)
    with atomic(session):
        where = [User.id == user.id]
        if first:  # two first passwords set at once: one wins, the other is asked for the current one
            where.append(User.password_hash.is_(None))
        if not session.execute(update(User).where(*where).values(password_hash=password_hash)).rowcount:
            raise WrongPassword(field="current")
        count = revoke_sessions(session, user.id, ctx.now(), keep=keep)
        record_audit(
            session,
            "auth.password_set" if first else "auth.password_changed",
            ctx=ctx,
            user_id=user.id,
            details={"other_sessions_revoked": count},
        )
    user.password_hash = password_hash
    return count


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return validation.uuid_of(value, "session_id")
    except InvalidRequest:
        return None


_BROWSERS = (
    ("MicroMessenger", "WeChat"),
    ("AlipayClient", "Alipay"),
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python-requests", "Python"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe_device(user_agent: str | None) -> str | None:
    """ "Chrome · Windows" from a User-Agent header, for people to recognise their sessions (None: unknown)."""
    ua = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in ua), None)
    system = next((name for marker, name in _SYSTEMS if marker in ua), None)
    if browser and system:
        return f"{browser} · {system}"
    return browser or system
