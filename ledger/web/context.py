"""What a request knows about the app and the person: settings, the gateway, the time zone, and the
operation context (who acts, from where, the app's clock)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, current_app, request
from flask_login import current_user

from ledger.config import Settings
from ledger.models import Actor, User
from ledger.services.context import Context, app_clock
from ledger.services.payments.xorpay import XorPayClient


def settings(app: Flask | None = None) -> Settings:
    """The app's validated settings (ledger.config)."""
    return (app or current_app).config["LEDGER"]


def gateway() -> XorPayClient:
    """The XorPay client of this app (the real gateway, or the sandbox: only the base URL differs)."""
    return current_app.extensions["ledger.xorpay"]


def site_timezone() -> ZoneInfo:
    """DEFAULT_TIMEZONE: the zone of answers to other services (no person is signed in)."""
    return settings().timezone


def user_timezone(user: User | None = None) -> ZoneInfo:
    """The person's time zone (the signed-in person by default), else the site's DEFAULT_TIMEZONE."""
    user = user if user is not None else (current_user if current_user.is_authenticated else None)
    return ZoneInfo((user and user.timezone) or settings().DEFAULT_TIMEZONE)


def clock(app: Flask | None = None) -> Callable[[], datetime]:
    """The app's clock: the wall clock, unless a test set another."""
    return app_clock((app or current_app).extensions)


def now() -> datetime:
    """The time on the app's clock (what a page's reads are "as of")."""
    return clock()()


def request_context(actor: Actor = Actor.USER) -> Context:
    """The operation context of this request: who acts, from where (for the audit trail), the app's clock."""
    return Context(
        actor=actor,
        ip=_valid_ip(request.remote_addr),
        user_agent=request.user_agent.string or None,
        clock=clock(),
        settings=settings(),
    )


def _valid_ip(raw: str | None) -> str | None:
    """The client address, if it is one (a forged X-Forwarded-For must not break the INET column)."""
    try:
        return str(ipaddress.ip_address(raw or ""))
    except ValueError:
        return None
