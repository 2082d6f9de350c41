"""The dashboard and the language switch."""

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.services.summary import account_summary
from ledger.web import LANGUAGES, safe_next_url, user_timezone

bp = Blueprint("site", __name__)


@bp.get("/")
@login_required
def dashboard() -> Any:
    summary = account_summary(get_session(), current_user, tz=user_timezone(), now=datetime.now(UTC))
    return render_template("site/dashboard.html", summary=summary)


@bp.get("/lang/<code>")
def set_language(code: str) -> Any:
    response = make_response(redirect(safe_next_url(request.args.get("next"), url_for("site.dashboard"))))
    if code in LANGUAGES:
        response.set_cookie("lang", code, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response
