"""A person's own pages: profile and avatar, ledger history, login sessions, password, audit trail.

Every query here names the person (`user_id = :me`) in its WHERE clause: ownership is part of the
query, never a check after it (SPEC 4.6).
"""

from __future__ import annotations

import io
import re
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ledger.db import atomic, is_storable_text
from ledger.models import AuditLog, LedgerEntry, User, UserSession
from ledger.services.accounts import check_password_rules, revoke_login
from ledger.services.audit import Origin, record_audit
from ledger.services.errors import InvalidCredentials, InvalidImage, InvalidRequest, NotFound, UsernameTaken

# IANA zones people live in (not the legacy aliases), for the profile's time zone choice.
TIMEZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/", "US/")))
USERNAME = re.compile(r"[\w.-]{3,30}")  # letters (any script), digits, _ . -
AVATAR_MAX_BYTES = 2 * 1024 * 1024
AVATAR_FORMATS = {"PNG", "JPEG", "WEBP"}
AVATAR_SIZE = 256  # pixels, square
MAX_SIDE = 4096  # pixels: an avatar needs 256; refuse what would cost a lot of memory to decode


@dataclass(frozen=True)
class ProfileChange:
    username: str | None
    full_name: str | None
    website: str | None
    timezone: str | None = None  # None: the site's DEFAULT_TIMEZONE


def validate_profile(username: str, full_name: str, website: str, timezone: str = "") -> ProfileChange:
    """Check the profile fields; raises InvalidRequest naming the field."""
    username, full_name, website, timezone = username.strip(), full_name.strip(), website.strip(), timezone.strip()
    if timezone and timezone not in TIMEZONES:
        raise InvalidRequest("Time zone: choose one from the list.", field="timezone")
    if username and not USERNAME.fullmatch(username):
        raise InvalidRequest("Username: 3 to 30 letters, digits, '_', '.' or '-'.", field="username")
    if len(full_name) > 100 or not is_storable_text(full_name) or not full_name.isprintable():
        raise InvalidRequest("Full name: at most 100 printable characters.", field="full_name")
    if website and not _is_web_address(website):
        raise InvalidRequest("Website: an http:// or https:// address of at most 200 characters.", field="website")
    return ProfileChange(username or None, full_name or None, website or None, timezone or None)


def _is_web_address(text: str) -> bool:
    """An http(s) address with a host, printable, without spaces, at most 200 characters."""
    if len(text) > 200 or not text.isprintable() or any(c.isspace() for c in text) or not is_storable_text(text):
        return False
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises for a port that is not a number
    except ValueError:  # "http://[" and other unparsable addresses
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def update_profile(session: Session, user: User, change: ProfileChange, *, origin: Origin) -> User:
    """Save the person's profile; raises UsernameTaken (usernames are unique, case-insensitively)
    or InvalidRequest when the database does not know the time zone."""
    if change.timezone and not session.scalar(
        select(func.count()).select_from(text("pg_timezone_names")).where(text("name = :zone")),
        {"zone": change.timezone},
    ):
        raise InvalidRequest("Time zone: choose one from the list.", field="timezone")
    try:
        with atomic(session):
            if change.username and session.scalar(
                select(User.id).where(func.lower(User.username) == change.username.lower(), User.id != user.id)
            ):
                raise UsernameTaken()
            session.execute(
                update(User)
                .where(User.id == user.id)
                .values(
                    username=change.username,
                    full_name=change.full_name,
                    website=change.website,
                    timezone=change.timezone,
                )
            )
            record_audit(
                session,
                "profile.updated",
                origin=origin,
                user_id=user.id,
                details={"username": change.username, "website": change.website},
            )
    except IntegrityError:  # the same username saved by someone else at the same instant
        raise UsernameTaken() from None
    user.username, user.full_name, user.website = change.username, change.full_name, change.website
    user.timezone = change.timezone
    return user


def save_avatar(session: Session, user: User, data: bytes, *, uploads: Path, origin: Origin) -> str:
    """Check an uploaded image by its content and store a re-encoded square PNG of it.

    Re-encoding keeps nothing of the upload but pixels (no metadata, no polyglot payload).
    Raises InvalidImage for anything but a PNG, JPEG or WebP image of at most 2 MB.
    """
    if not data or len(data) > AVATAR_MAX_BYTES:
        raise InvalidImage()
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in AVATAR_FORMATS or max(probe.width, probe.height) > MAX_SIDE:
                raise InvalidImage()
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image = ImageOps.exif_transpose(image).convert("RGBA")
            avatar = ImageOps.fit(image, (AVATAR_SIZE, AVATAR_SIZE))
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        struct.error,
        Image.DecompressionBombError,
    ):  # what Pillow raises for broken files
        raise InvalidImage() from None
    name = f"{uuid.uuid4().hex}.png"
    uploads.mkdir(parents=True, exist_ok=True)
    avatar.save(uploads / name, format="PNG", optimize=True)
    previous = user.avatar
    with atomic(session):
        session.execute(update(User).where(User.id == user.id).values(avatar=name))
        record_audit(session, "profile.avatar_changed", origin=origin, user_id=user.id, details={"avatar": name})
    user.avatar = name
    if previous:
        (uploads / previous).unlink(missing_ok=True)
    return name


def recent_ledger(session: Session, user_id: uuid.UUID, limit: int = 20) -> list[LedgerEntry]:
    """The person's latest balance changes, newest first, each with the balance it left."""
    return list(
        session.scalars(
            select(LedgerEntry).where(LedgerEntry.user_id == user_id).order_by(LedgerEntry.id.desc()).limit(limit)
        )
    )


# --- login sessions and password ------------------------------------------------------------------


def active_sessions(session: Session, user_id: uuid.UUID) -> list[UserSession]:
    return list(
        session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
            .order_by(UserSession.last_seen_at.desc())
        )
    )


def revoke_session(session: Session, *, user_id: uuid.UUID, session_id: object, origin: Origin) -> None:
    """Sign out one of the person's own login sessions (effective on its next request); NotFound otherwise."""
    if not revoke_login(session, user_id=user_id, session_id=session_id, origin=origin, action="auth.session_revoked"):
        raise NotFound("No such session.")


def revoke_other_sessions(
    session: Session, *, user_id: uuid.UUID, keep: object, origin: Origin, reason: str = "auth.other_sessions_revoked"
) -> int:
    """Sign out every login session of the person but `keep` (this browser's). Returns how many."""
    keep_id = _uuid_or_none(keep)
    with atomic(session):
        count = _revoke_others(session, user_id, keep_id)
        record_audit(session, reason, origin=origin, user_id=user_id, details={"revoked": count})
    return count


def _revoke_others(session: Session, user_id: uuid.UUID, keep_id: uuid.UUID | None) -> int:
    return session.execute(
        update(UserSession)
        .where(
            UserSession.user_id == user_id,
            UserSession.revoked_at.is_(None),
            UserSession.id != keep_id if keep_id else True,
        )
        .values(revoked_at=datetime.now(UTC))
    ).rowcount


def change_password(session: Session, user: User, *, current: str, new: str, keep: object, origin: Origin) -> int:
    """Change the password (the current one is required) and sign out every other session.

    Raises InvalidCredentials (wrong current password, audited) or InvalidRequest (new one too
    short or long). Returns the number of other sessions signed out.
    """
    if not check_password_hash(user.password_hash, current):
        with atomic(session):
            record_audit(session, "auth.password_change_failed", origin=origin, user_id=user.id)
        raise InvalidCredentials("The current password is not right.")
    check_password_rules(new)
    password_hash = generate_password_hash(new)
    with atomic(session):
        session.execute(update(User).where(User.id == user.id).values(password_hash=password_hash))
        count = _revoke_others(session, user.id, _uuid_or_none(keep))
        record_audit(
            session, "auth.password_changed", origin=origin, user_id=user.id, details={"other_sessions_revoked": count}
        )
    user.password_hash = password_hash
    return count


def recent_audit(session: Session, user_id: uuid.UUID, limit: int = 30) -> list[AuditLog]:
    return list(
        session.scalars(select(AuditLog).where(AuditLog.user_id == user_id).order_by(AuditLog.id.desc()).limit(limit))
    )


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
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


def describe_device(user_agent: str | None) -> str:
    """ "Chrome on Windows" from a User-Agent header, for people to recognise their sessions."""
    ua = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in ua), None)
    system = next((name for marker, name in _SYSTEMS if marker in ua), None)
    if browser and system:
        return f"{browser} · {system}"
    return browser or system or "Unknown device"
