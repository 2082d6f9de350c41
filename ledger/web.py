"""What every blueprint shares: the request's origin, JSON errors, sign-in state, safe redirects,
the error handlers and the template filters."""

from __future__ import annotations

import hmac
import ipaddress
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import segno
from flask import Flask, Response, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from markupsafe import Markup
from werkzeug.datastructures import CombinedMultiDict
from werkzeug.exceptions import HTTPException

from ledger.config import Settings
from ledger.db import get_session
from ledger.extensions import babel, login_manager
from ledger.models import User
from ledger.money import format_amount, to_api
from ledger.services.accounts import load_session_user
from ledger.services.audit import Origin
from ledger.services.billing import get_balance
from ledger.services.errors import InvalidRequest, LedgerError, Unauthorized
from ledger.services.xorpay import XorPayClient

LANGUAGES = {"zh": "中文", "en": "English"}
SESSION_ID_KEY = "sid"  # the user_sessions row of this browser's login


def settings() -> Settings:
    """The app's validated settings (ledger.config)."""
    return settings_of(current_app)


def settings_of(app: Flask) -> Settings:
    return app.config["LEDGER"]


def request_origin(actor: str = "user") -> Origin:
    return Origin(actor=actor, ip=_valid_ip(request.remote_addr), user_agent=request.user_agent.string or None)


def _valid_ip(raw: str | None) -> str | None:
    """The client address, if it is one (a forged X-Forwarded-For must not break the INET column)."""
    try:
        return str(ipaddress.ip_address(raw or ""))
    except ValueError:
        return None


def user_timezone(user: User | None = None) -> ZoneInfo:
    user = user if user is not None else (current_user if current_user.is_authenticated else None)
    return ZoneInfo((user and user.timezone) or settings().DEFAULT_TIMEZONE)


def wants_json() -> bool:
    return request.path.startswith("/api/")


def json_error(code: str, message: str, status: int, **extra: Any) -> tuple[Response, int]:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update({k: to_api(v) if isinstance(v, Decimal) else v for k, v in extra.items()})
    return jsonify(error=body), status


def iso(dt: datetime | None, tz: ZoneInfo | None = None) -> str | None:
    """An API time: ISO-8601 with the offset of the person's time zone."""
    return None if dt is None else dt.astimezone(tz or user_timezone()).isoformat()


def safe_next_url(target: str | None, default: str) -> str:
    """Follow `next=` only to a path on this site (no open redirect)."""
    if not target:
        return default
    target = target.replace("\\", "/").strip()
    parts = urlsplit(urljoin(request.host_url, target))
    host = urlsplit(request.host_url)
    if (
        parts.scheme != host.scheme
        or parts.netloc != host.netloc
        or not target.startswith("/")
        or target.startswith("//")
    ):
        return default
    return target


# --- request parsing shared by the APIs ---------------------------------------------------------


def require_internal_token() -> None:
    """Internal routes: header x-internal-token equal to INTERNAL_API_KEY, compared in constant time."""
    given = request.headers.get("x-internal-token", "").encode()
    expected = settings().INTERNAL_API_KEY.encode()
    if not expected or not hmac.compare_digest(given, expected):
        raise Unauthorized("Missing or wrong x-internal-token header.")


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, or InvalidRequest."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting
        body = None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object (Content-Type: application/json).")
    return body


def parse_uuid(value: object, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value) if isinstance(value, str) else uuid.UUID("invalid")
    except ValueError:
        raise InvalidRequest(f"{field} must be a UUID", field=field) from None


def gateway() -> XorPayClient:
    """The XorPay client of this app (the real gateway, or the sandbox: only the base URL differs)."""
    return current_app.extensions["ledger.xorpay"]


def invite_link(code: str) -> str:
    return f"{settings().SITE_URL.rstrip('/')}/register?invite={code}"


def qr_svg(text: str) -> Markup:
    """A QR code as inline SVG (no image request, nothing from another site)."""
    svg = segno.make(text, error="m").svg_inline(border=2, dark="#111827", omitsize=True)  # viewBox: scales
    return Markup(svg)  # noqa: S704 - segno writes only path data; the text is not embedded


class TextForm(FlaskForm):
    """A form of text fields only: a file part sent in a multipart body is never taken as text."""

    class Meta(FlaskForm.Meta):
        def wrap_formdata(self, form: Any, formdata: Any) -> Any:
            formdata = super().wrap_formdata(form, formdata)
            return request.form if isinstance(formdata, CombinedMultiDict) else formdata


# --- sign-in state -------------------------------------------------------------------------------


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    return load_session_user(get_session(), user_id=user_id, session_id=session.get(SESSION_ID_KEY, ""))


@login_manager.unauthorized_handler
def _unauthorized() -> Any:
    if wants_json():
        return json_error("unauthorized", "Sign in to use this API.", 401)
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


# --- locale and time zone ------------------------------------------------------------------------


def select_locale() -> str:
    chosen = request.cookies.get("lang")
    return chosen if chosen in LANGUAGES else "zh"


def select_timezone() -> str:
    return str(user_timezone())


# --- errors -------------------------------------------------------------------------------------


def _handle_ledger_error(exc: LedgerError) -> Any:
    if wants_json():
        return json_error(exc.code, exc.message, exc.status, **exc.extra)
    return render_template("errors/error.html", status=exc.status, message=exc.message), exc.status


def _handle_csrf_error(exc: CSRFError) -> Any:
    if wants_json():
        # CSRF is checked before the view; someone not signed in should first hear that.
        if not current_user.is_authenticated:
            return _unauthorized()
        return json_error("csrf_failed", exc.description, 400)
    message = _("This form has expired or was not sent from this site. Please try again.")
    return render_template("errors/error.html", status=400, message=message), 400


def _handle_http_error(exc: HTTPException) -> Any:
    status = exc.code or 500
    if wants_json():
        code = (exc.name or "error").lower().replace(" ", "_")
        return json_error(code, exc.description or exc.name, status)
    return render_template("errors/error.html", status=status, message=exc.description), status


def _handle_unexpected(exc: Exception) -> Any:
    current_app.logger.exception("unhandled error")
    if wants_json():
        return json_error("internal_error", "Something went wrong on our side.", 500)
    return render_template("errors/error.html", status=500, message=None), 500


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(LedgerError, _handle_ledger_error)
    app.register_error_handler(CSRFError, _handle_csrf_error)
    app.register_error_handler(HTTPException, _handle_http_error)
    if not app.debug:  # in debug, let the debugger show the traceback
        app.register_error_handler(Exception, _handle_unexpected)


# --- templates ----------------------------------------------------------------------------------


def register_template_helpers(app: Flask) -> None:
    app.jinja_env.filters["money"] = lambda value: format_amount(Decimal(value))
    app.jinja_env.filters["localtime"] = lambda dt, fmt="yyyy-MM-dd HH:mm": format_datetime(dt, fmt) if dt else ""

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {
            "languages": LANGUAGES,
            "current_locale": str(get_locale()),
            "new_uuid": lambda: str(uuid.uuid4()),
            # Called by the header only when someone is signed in.
            "current_balance": lambda: get_balance(get_session(), current_user.id),
        }


# --- security headers ----------------------------------------------------------------------------

# Everything comes from this site: no inline script or style, no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # Bootstrap draws form controls with data: SVGs
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def register_security_headers(app: Flask) -> None:
    production = settings_of(app).is_production

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if production:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if current_user and current_user.is_authenticated:
            headers.setdefault("Cache-Control", "private, no-store")  # pages with balances stay out of caches
        return response


def init_i18n(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
