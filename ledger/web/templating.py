"""What templates share: filters (money, local time), globals (languages, balance), QR codes, links."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import segno
from babel.dates import get_timezone_name
from flask import Flask
from flask_babel import format_datetime, get_locale, get_timezone, gettext
from flask_login import current_user
from markupsafe import Markup

from ledger.db import get_session
from ledger.money import format_amount
from ledger.services.books.accounts import get_balance
from ledger.services.books.low_balance import low_threshold
from ledger.services.console.pricing import MODELS, console_run
from ledger.services.growth.codes import shown as shown_code
from ledger.services.people.sign_in import describe_device
from ledger.web.auth import portal_return_url
from ledger.web.context import now, settings, user_timezone
from ledger.web.language import LANGUAGES, payment_status_label, zone_label


def invite_link(code: str) -> str:
    return f"{settings().SITE_URL.rstrip('/')}/register?invite={code}"


def qr_svg(text: str) -> Markup:
    """A QR code as inline SVG (no image request, nothing from another site)."""
    svg = segno.make(text, error="m").svg_inline(border=2, dark="#111827", omitsize=True)  # viewBox: scales
    return Markup(svg)  # noqa: S704 - segno writes only path data; the text is not embedded


def shown_params(params: object, model_id: object) -> list[tuple[str, str]]:
    """A charge's parameters as (label, value) text for a page to print, escaped like any text. A
    console run reads as the console labels it, in the person's language; anything else is data
    (an API charge may carry any params) and is shown exactly as it was sent: never passed through
    gettext, which would apply its %-formatting and mark the result safe HTML."""
    run = console_run(model_id, params)
    if run is not None:
        pairs = []
        for param in run.model.params:
            value = run.params[param.name]
            choice = param.choice_labels.get(str(value))
            pairs.append((gettext(param.label), gettext(choice) if choice else str(value)))
        return pairs
    if not isinstance(params, Mapping):
        return []
    return [(str(k), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)) for k, v in params.items()]


def init_app(app: Flask) -> None:
    app.jinja_env.filters["money"] = lambda value: format_amount(Decimal(value))
    app.jinja_env.filters["localtime"] = lambda dt, fmt="yyyy-MM-dd HH:mm": format_datetime(dt, fmt) if dt else ""
    app.jinja_env.filters["device"] = describe_device
    app.jinja_env.filters["redemption_code"] = shown_code  # XXXX-XXXX-XXXX-XXXX, as the code was handed out
    app.jinja_env.globals["payment_status_label"] = payment_status_label  # macros are imported without context
    # Audit details and order metadata as JSON that reads: Chinese as written, not \\u escapes
    # (a str, so autoescaped as text)
    app.jinja_env.filters["readable_json"] = lambda value, indent=None: json.dumps(
        value, ensure_ascii=False, sort_keys=True, indent=indent, default=str
    )
    # "Image Studio v2", not "image-studio-v2": a model by the name people see on the console
    app.jinja_env.filters["model_name"] = lambda model_id: MODELS[model_id].name if model_id in MODELS else model_id
    app.jinja_env.filters["params_of"] = shown_params
    app.jinja_env.filters["params_line"] = lambda params, model_id: " · ".join(
        f"{label}: {value}" for label, value in shown_params(params, model_id)
    )
    # "中国标准时间" / "China Standard Time": the person's zone as it was at that instant (summer time...)
    app.jinja_env.filters["zone_name"] = lambda dt: get_timezone_name(
        dt.astimezone(get_timezone()), locale=get_locale()
    )

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {
            "languages": LANGUAGES,
            "site_name": settings().SITE_NAME,
            "zone_label": zone_label,
            "current_zone": lambda: user_timezone().key,  # the person's zone (or the site's), by its IANA id
            "current_locale": str(get_locale()),
            "new_uuid": lambda: str(uuid.uuid4()),
            "portal_return_url": portal_return_url,  # the SaaS's page a portal link came from (SPEC 25)
            # Called by the header only when someone is signed in.
            "current_balance": lambda: get_balance(get_session(), current_user.id),
            # The banner of SPEC 16: the person's threshold while their available amount is below it.
            "low_balance_threshold": lambda: low_threshold(
                get_session(), current_user.id, settings().LOW_BALANCE_THRESHOLD, now()
            ),
        }
