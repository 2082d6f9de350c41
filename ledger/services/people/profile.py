"""A person's profile (username, full name, website, time zone) and avatar."""

from __future__ import annotations

import io
import re
import struct
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import available_timezones

import icu
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger import validation
from ledger.db import atomic
from ledger.errors import InvalidImage, InvalidRequest, UsernameTaken
from ledger.i18n import N_
from ledger.models import User
from ledger.services.audit import record_audit
from ledger.services.context import Context

# IANA zones people live in (not the legacy aliases), for the profile's time zone choice.
TIMEZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/", "US/")))
USERNAME = re.compile(r"[\w.-]{3,30}")  # letters (any script), digits, _ . -


# Letters that look like nothing (Hangul fillers, which NFKC keeps and \w accepts).
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
# Scripts that may be mixed in one name, as people write them (UTS #39's "highly restrictive" sets).
MIXABLE = (
    frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "CJK", "HANGUL"}),
    frozenset({"LATIN", "CJK", "BOPOMOFO"}),
)


def _one_writing_system(name: str) -> bool:
    """No invisible letters, and no mix of alphabets that lets one name pass for another ("rооt" with
    Cyrillic o's beside "root"): one script, or Latin with Chinese/Japanese/Korean."""
    if any(c in INVISIBLE_LETTERS for c in name):
        return False
    scripts = {unicodedata.name(c, "UNKNOWN").split()[0] for c in name if c.isalpha()}
    return len(scripts) <= 1 or any(scripts <= allowed for allowed in MIXABLE)


# UTS #39 (ICU's data, not a table of ours). One per process: building it loads the confusables data,
# and getSkeleton takes it const, which ICU documents as safe from many threads at once (uspoof.h).
SPOOF_CHECKER = icu.SpoofChecker()


def username_key(name: str) -> str:
    """What makes two usernames the same name whatever their case: NFKC then case folding
    ("ａｄｍｉｎ" and "ADMIN" are "admin"), then Unicode's confusables skeleton (UTS #39), so that
    names that look alike are one name: "ɑdmin" (Latin alpha), "admın" (dotless i) and "admin" are
    "adrnin", the Cyrillic "асе" is "ace", "paypa1" is "paypal". The skeleton is case folded again
    because some prototypes are capitals (digit zero is "O"): "l0ve" is then "love". Never shown;
    at most 7 characters a letter (a Hangul syllable's skeleton), so the key's column is text."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return SPOOF_CHECKER.getSkeleton(0, folded).casefold()  # the type, 0, is unused since ICU 58


def username_shape(name: str) -> str:
    """The skeleton of the name as pages show it, capitals kept: "PaypaI" (capital i), "Paypal"
    and "Paypa1" are "Paypal", "Ivan" is "lvan". Case folding first (username_key) makes a capital
    I an i, never the l it looks like; folding after would make "ALI" the "all" that "ALL" is. So a
    name is taken when either key is: two relations, each one of look-alikes."""
    return SPOOF_CHECKER.getSkeleton(0, unicodedata.normalize("NFKC", name))


def username_keys(name: str | None) -> tuple[str | None, str | None]:
    """Both keys of a username (None for none)."""
    return (username_key(name), username_shape(name)) if name else (None, None)


def _holds(column: Any, key: str) -> Any:
    """SQL: `column` holds `key`, as it is or set aside ("<key> <id>")."""
    return or_(column == key, column.startswith(f"{key} ", autoescape=True))


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

    @classmethod
    def parse(cls, username: object, full_name: object, website: object, timezone: object) -> ProfileChange:
        """Check the profile fields as they came; raises InvalidRequest naming the field."""
        zone = validation.optional_text(timezone, "timezone", max_length=64)
        if zone and zone not in TIMEZONES:
            raise InvalidRequest(N_("Choose a time zone from the list."), field="timezone")
        name = validation.optional_text(username, "username", max_length=30)
        name = unicodedata.normalize("NFKC", name) if name else name  # full-width letters are the plain ones
        if name and not USERNAME.fullmatch(name):
            raise InvalidRequest(N_("Use 3 to 30 letters, digits, '_', '.' or '-'."), field="username")
        if name and not _one_writing_system(name):
            raise InvalidRequest(
                N_("Write your username in one alphabet (Latin with Chinese is fine), without invisible letters."),
                field="username",
            )
        full = validation.optional_text(full_name, "full_name", max_length=100, printable=True)
        site = validation.optional_text(website, "website", max_length=200)
        if site and not _is_web_address(site):
            raise InvalidRequest(N_("Give an http:// or https:// address of at most 200 characters."), field="website")
        return cls(name, full, site, zone)


def new_username(session: Session, raw: object) -> tuple[str, str, str] | None:
    """A username for a new account, with its two keys; None when none is given. Raises
    InvalidRequest (the profile's rules) or UsernameTaken."""
    name = ProfileChange.parse(raw, None, None, None).username
    key, shape = username_keys(name)
    if name is None or key is None or shape is None:
        return None
    if session.scalar(select(User.id).where(_holds(User.username_key, key) | _holds(User.username_shape, shape))):
        raise UsernameTaken(field="username")
    return name, key, shape


def _is_web_address(text: str) -> bool:
    """An http(s) address with a host, printable, without spaces, at most 200 characters."""
    if len(text) > 200 or not text.isprintable() or any(c.isspace() for c in text):
        return False
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises for a port that is not a number
    except ValueError:  # "http://[" and other unparsable addresses
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def update_profile(
    session: Session,
    user: User,
    *,
    username: object,
    full_name: object,
    website: object,
    timezone: object,
    ctx: Context,
) -> User:
    """Check and save the person's profile; raises InvalidRequest naming a bad field, or
    UsernameTaken: usernames are unique by `username_key` and by `username_shape`, and a name is
    also taken while someone keeps it under a set-aside key ("<key> <their id>", given by migration
    0017 to the later of two old names that became one). The person's own name, saved unchanged,
    keeps the keys it has. Locks the person's row."""
    change = ProfileChange.parse(username, full_name, website, timezone)
    if change.timezone and not session.scalar(
        select(func.count()).select_from(text("pg_timezone_names")).where(text("name = :zone")),
        {"zone": change.timezone},
    ):
        raise InvalidRequest(N_("Choose a time zone from the list."), field="timezone")
    try:
        with atomic(session):
            kept, *kept_keys = session.execute(
                select(User.username, User.username_key, User.username_shape)
                .where(User.id == user.id)
                .with_for_update()
            ).one()
            key, shape = username_keys(change.username)
            if change.username is not None and change.username == kept:
                key, shape = kept_keys  # their name as it is: a set-aside key stays theirs
            elif (
                key
                and shape
                and session.scalar(
                    select(User.id).where(
                        _holds(User.username_key, key) | _holds(User.username_shape, shape), User.id != user.id
                    )
                )
            ):
                raise UsernameTaken(field="username")
            session.execute(
                update(User)
                .where(User.id == user.id)
                .values(
                    username=change.username,
                    username_key=key,
                    username_shape=shape,
                    full_name=change.full_name,
                    website=change.website,
                    timezone=change.timezone,
                )
            )
            record_audit(
                session,
                "profile.updated",
                ctx=ctx,
                user_id=user.id,
                details={"username": change.username, "website": change.website},
            )
    except IntegrityError:  # the same username saved by someone else at the same instant
        raise UsernameTaken(field="username") from None
    user.username, user.full_name, user.website = change.username, change.full_name, change.website
    user.username_key = key
    user.timezone = change.timezone
    return user


def save_avatar(session: Session, user: User, data: bytes, *, uploads: Path, ctx: Context) -> str:
    """Check an uploaded image by its content and store a re-encoded square PNG of it.

    Re-encoding keeps nothing of the upload but pixels (no metadata, no polyglot payload).
    Raises InvalidImage for anything but a PNG, JPEG or WebP image of at most 2 MB.
    """
    if not data or len(data) > AVATAR_MAX_BYTES:
        raise InvalidImage(field="avatar")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in AVATAR_FORMATS or max(probe.width, probe.height) > MAX_SIDE:
                raise InvalidImage(field="avatar")
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
        raise InvalidImage(field="avatar") from None
    name = f"{uuid.uuid4().hex}.png"
    uploads.mkdir(parents=True, exist_ok=True)
    avatar.save(uploads / name, format="PNG", optimize=True)
    previous = user.avatar
    with atomic(session):
        session.execute(update(User).where(User.id == user.id).values(avatar=name))
        record_audit(session, "profile.avatar_changed", ctx=ctx, user_id=user.id, details={"avatar": name})
    user.avatar = name
    if previous:
        (uploads / previous).unlink(missing_ok=True)
    return name
