"""What templates share: filters (money, local time), globals (languages, balance), QR codes, links."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import segno
from babel.dates import get_timezone_name
from flask import Flask
from flask_babel import format_datetime, get_locale, get_timezone
from flask_login import current_user
from markupsafe import Markup

from ledger.db import get_session
from ledger.money import format_amount
from ledger.services.accounts import describe_device
from ledger.services.billing import get_balance
from ledger.services.low_balance import low_threshold
from ledger.web.context import settings
from ledger.web.i18n import LANGUAGES, zone_label


def invite_link(code: str) -> str:
    return f"{settings().SITE_URL.rstrip('/')}/register?invite={code}"


def qr_svg(text: str) -> Markup:
    """A QR code as inline SVG (no image request, nothing from another site)."""
    svg = segno.make(text, error="m").svg_inline(border=2, dark="#111827", omitsize=True)  # viewBox: scales
    return Markup(svg)  # noqa: S704 - segno writes only path data; the text is not embedded


def init_app(app: Flask) -> None:
    app.jinja_env.filters["money"] = lambda value: format_amount(Decimal(value))
    app.jinja_env.filters["localtime"] = lambda dt, fmt="yyyy-MM-dd HH:mm": format_datetime(dt, fmt) if dt else ""
    app.jinja_env.filters["device"] = describe_device
    # "中国标准时间" / "China Standard Time": the person's zone as it was at that instant (summer time...)
    app.jinja_env.filters["zone_name"] = lambda dt: get_timezone_name(
        dt.astimezone(get_timezone()), locale=get_locale()
    )

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {
            "languages": LANGUAGES,
            "zone_label": zone_label,
            "current_locale": str(get_locale()),
            "new_uuid": lambda: str(uuid.uuid4()),
            # Called by the header only when someone is signed in.
            "current_balance": lambda: get_balance(get_session(), current_user.id),
            # The banner of SPEC 16: the person's threshold while their available amount is below it.
            "low_balance_threshold": lambda: low_threshold(
                get_session(), current_user.id, settings().LOW_BALANCE_THRESHOLD
            ),
        }
