"""Portal links (SPEC 25): the SaaS's backend asks for a link that signs its person in to Ledger's
pages once, within 10 minutes, as Stripe's customer portal does.

The link carries a random token; only its SHA-256 is kept, so the table signs nobody in. Using it
marks it used and opens a login session in one transaction: two clicks of one link sign in once.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import validation
from ledger.db import atomic
from ledger.errors import AccountDisabled, AdminAccount, InvalidRequest, PortalLinkUnusable, UserNotFound
from ledger.i18n import N_
from ledger.models import PortalToken, User, UserSession
from ledger.services.audit import record_audit, refusal
from ledger.services.context import Context
from ledger.services.people.sign_in import add_login

LIFETIME = timedelta(minutes=10)
# Ledger's pages a link may land on; a query string of at most NEXT_MAX characters in all may follow.
PAGES = ("/", "/recharge", "/usage", "/invites", "/account", "/security", "/console")
DEFAULT_PAGE = "/recharge"
NEXT_MAX = 500
RETURN_URL_MAX = 2000


@dataclass(frozen=True)
class PortalLink:
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class PortalEntry:
    """A used link: who is signed in (their new login session), where they land, where they go back."""

    user: User
    login: UserSession
    next_path: str
    return_url: str | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def landing_page(raw: object) -> str:
    """Where the link lands: one of Ledger's PAGES, with an optional query string; InvalidRequest else."""
    if raw is None:
        return DEFAULT_PAGE
    refused = InvalidRequest(N_("Choose one of Ledger's pages: %(pages)s."), field="next", pages=", ".join(PAGES))
    if not isinstance(raw, str) or len(raw) > NEXT_MAX or not raw.isprintable() or " " in raw:
        raise refused
    try:
        parts = urlsplit(raw)
    except ValueError:
        raise refused from None
    if parts.scheme or parts.netloc or parts.fragment or parts.path not in PAGES or raw.startswith("//"):
        raise refused
    return raw


def return_url_of(raw: object, *, allowed_hosts: str, production: bool) -> str | None:
    """Where the page's "back" link leads: an http(s) URL (https in production) whose host, and
    port if it names one, is exactly one of the comma-separated `allowed_hosts`; None when absent."""
    if raw is None:
        return None
    hosts = {host.strip().lower() for host in allowed_hosts.split(",") if host.strip()}
    refused = InvalidRequest(
        N_("Give a return_url on one of the hosts of PORTAL_RETURN_HOSTS (%(hosts)s)."),
        field="return_url",
        hosts=", ".join(sorted(hosts)) or "-",
    )
    if not isinstance(raw, str) or len(raw) > RETURN_URL_MAX or not raw.isprintable() or " " in raw:
        raise refused
    try:
        parts = urlsplit(raw)
        _ = parts.port  # a port that is not a number
    except ValueError:
        raise refused from None
    schemes = ("https",) if production else ("https", "http")
    if parts.scheme not in schemes or "@" in parts.netloc or parts.netloc.lower() not in hosts:
        raise refused
    return raw


def create_portal_link(
    session: Session, *, user_id: object, landing: object = None, return_url: object = None, ctx: Context
) -> PortalLink:
    """A one-use link that signs the person in at `landing` (the API's `next`) within LIFETIME, as
    SITE_URL/portal/<token>.

    Raises UserNotFound, AccountDisabled (a disabled person cannot sign in), AdminAccount (the
    internal token charges and reads accounts; it must not open the back office), or InvalidRequest
    (a `next` that is not one of Ledger's pages, a `return_url` off PORTAL_RETURN_HOSTS). Writes the
    token's hash and an audit row.
    """
    config = ctx.config
    landing = landing_page(landing)
    back = return_url_of(return_url, allowed_hosts=config.PORTAL_RETURN_HOSTS, production=config.is_production)
    uid = validation.uuid_of(user_id, "user_id", error=UserNotFound())
    token = secrets.token_urlsafe(32)
    now = ctx.now()
    with atomic(session):
        user = session.get(User, uid)
        if user is None:
            raise UserNotFound()
        if user.disabled_at is not None:
            raise AccountDisabled()
        if user.is_admin:
            raise AdminAccount()
        link = PortalToken(
            id=uuid.uuid4(),
            user_id=uid,
            token_hash=token_hash(token),
            next_path=landing,
            return_url=back,
            created_at=now,
            expires_at=now + LIFETIME,
        )
        session.add(link)
        record_audit(
            session,
            "portal.link_created",
            ctx=ctx,
            user_id=uid,
            details={"link_id": str(link.id), "next": landing, "return_url": back},
        )
    return PortalLink(f"{config.SITE_URL.rstrip('/')}/portal/{token}", link.expires_at)


def use_portal_link(session: Session, *, token: object, ctx: Context) -> PortalEntry:
    """Sign the link's person in: mark the link used and open a login session (audited, `via`
    portal) in one transaction, locking the link's row. Raises PortalLinkUnusable for a link that
    is unknown, used, past its 10 minutes, or whose person is disabled or became an admin (audited
    when the link is known)."""
    now = ctx.now()
    with atomic(session):
        link = (
            session.scalar(select(PortalToken).where(PortalToken.token_hash == token_hash(token)).with_for_update())
            if isinstance(token, str) and 20 <= len(token) <= 100
            else None
        )
        if link is None:
            raise PortalLinkUnusable()
        user = session.get(User, link.user_id)
        why = "used" if link.used_at else "expired" if link.expires_at <= now else None
        if why is None and (user is None or user.disabled_at is not None):
            why = "account_disabled"
        if why is None and user is not None and user.is_admin:
            why = "admin_account"
        if why is not None or user is None:
            raise refusal(
                PortalLinkUnusable(),
                "portal.link_refused",
                ctx=ctx,
                user_id=link.user_id,
                details={"link_id": str(link.id), "why": why},
            )
        login = add_login(session, user, ctx=ctx, via="portal", link_id=str(link.id))
        link.used_at, link.session_id = now, login.id
    return PortalEntry(user, login, link.next_path, link.return_url)
