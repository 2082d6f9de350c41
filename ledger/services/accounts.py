"""People: sign-up, sign-in, and the login sessions that a sign-out or a revocation ends."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ledger.db import atomic
from ledger.models import BillingAccount, User, UserSession
from ledger.services.audit import Origin, record_audit
from ledger.services.errors import EmailTaken, InvalidCredentials, InvalidRequest
from ledger.services.invites import bind_in_transaction

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
# No 0/o, 1/l/i: invite codes are read aloud and typed from screenshots.
INVITE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
INVITE_CODE_LENGTH = 8
# last_seen_at is written at most this often, not on every request.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
# Checked against when the email is unknown, so that a failed login takes as long either way.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def normalise_email(raw: str) -> str:
    """The email as stored: validated, lower-cased (emails are unique case-insensitively)."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidRequest(f"Invalid email address: {exc}", field="email") from None


def check_password_rules(password: str) -> None:
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise InvalidRequest(
            f"Password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters long", field="password"
        )


def new_invite_code() -> str:
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_CODE_LENGTH))


def register_user(
    session: Session,
    *,
    email: str,
    password: str,
    origin: Origin,
    is_admin: bool = False,
    invite_code: str | None = None,
) -> User:
    """Create a person with their billing account (balance 0) and invite code, in one transaction.

    With `invite_code`, the person is bound to its owner in the same transaction (nothing is
    created if the code is refused). Raises InvalidRequest (bad email or password), EmailTaken,
    or the refusals of invites.bind_invite; writes audit rows.
    """
    email = normalise_email(email)
    check_password_rules(password)
    password_hash = generate_password_hash(password)  # slow on purpose: outside the transaction
    try:
        with atomic(session):
            if session.scalar(select(User.id).where(User.email == email)) is not None:
                raise EmailTaken()
            user = User(
                id=uuid.uuid4(),
                email=email,
                password_hash=password_hash,
                invite_code=new_invite_code(),
                is_admin=is_admin,
            )
            session.add(user)
            session.flush()  # the account references the user
            session.add(BillingAccount(user_id=user.id, balance=0))
            if invite_code and invite_code.strip():
                bind_in_transaction(session, invitee=user, code=invite_code, origin=origin)
            record_audit(
                session,
                "user.registered",
                origin=origin,
                user_id=user.id,
                details={"email": email, "is_admin": is_admin},
            )
    except IntegrityError as exc:  # a sign-up with the same email won the race
        if "uq_users_email" in str(exc.orig):
            raise EmailTaken() from None
        raise
    return user


def authenticate(session: Session, *, email: str, password: str, origin: Origin) -> User:
    """Return the person with this email and password, or audit the failure and raise InvalidCredentials.

    The error does not say whether the email exists (no account enumeration).
    """
    email = email.strip().lower()
    # Text PostgreSQL cannot hold can match no account; it still costs a hash check.
    storable = "\x00" not in email and email.isprintable() and len(email) <= 254
    user = session.scalar(select(User).where(User.email == email)) if storable else None
    if user is None or not check_password_hash(user.password_hash, password):
        if user is None:
            check_password_hash(_DUMMY_HASH, password)
        with atomic(session):
            record_audit(
                session,
                "auth.login_failed",
                origin=origin,
                user_id=user.id if user else None,
                details={"email": email if storable else None},
            )
        raise InvalidCredentials()
    return user


def start_session(session: Session, user: User, *, origin: Origin) -> UserSession:
    """Record a login: one user_sessions row, whose id the browser's cookie carries."""
    with atomic(session):
        login = UserSession(
            id=uuid.uuid4(), user_id=user.id, ip=origin.ip, user_agent=(origin.user_agent or "")[:512] or None
        )
        session.add(login)
        record_audit(session, "auth.login", origin=origin, user_id=user.id, details={"session_id": str(login.id)})
    return login


def load_session_user(session: Session, *, user_id: str, session_id: str) -> User | None:
    """The person of a live (not revoked) login session, or None; notes when it was last seen."""
    try:
        uid, sid = uuid.UUID(user_id), uuid.UUID(session_id)
    except (ValueError, TypeError, AttributeError):
        return None
    row = session.execute(
        select(User, UserSession.last_seen_at)
        .join(UserSession, UserSession.user_id == User.id)
        .where(User.id == uid, UserSession.id == sid, UserSession.revoked_at.is_(None))
    ).one_or_none()
    if row is None:
        return None
    user, last_seen_at = row
    now = datetime.now(UTC)
    if now - last_seen_at > LAST_SEEN_RESOLUTION:
        with atomic(session):
            session.execute(update(UserSession).where(UserSession.id == sid).values(last_seen_at=now))
    return user


def revoke_login(session: Session, *, user_id: uuid.UUID, session_id: object, origin: Origin, action: str) -> bool:
    """Revoke one of the person's live login sessions, audited as `action` (it ends on that
    browser's next request). False when the person has no such live session."""
    try:
        sid = uuid.UUID(str(session_id))
    except ValueError:
        return False
    with atomic(session):
        revoked = session.execute(
            update(UserSession)
            .where(UserSession.id == sid, UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        ).rowcount
        if revoked:
            record_audit(session, action, origin=origin, user_id=user_id, details={"session_id": str(sid)})
    return bool(revoked)


def end_session(session: Session, *, user_id: uuid.UUID, session_id: str | None, origin: Origin) -> None:
    """Sign out: revoke this browser's login session (a no-op when it is already revoked)."""
    revoke_login(session, user_id=user_id, session_id=session_id, origin=origin, action="auth.logout")
