"""The dashboard and the language switch."""

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ledger.charts import bar_chart
from ledger.db import get_session
from ledger.services.reports import daily_series, parse_query
from ledger.services.summary import account_summary
from ledger.web import LANGUAGES, safe_next_url, user_timezone

bp = Blueprint("site", __name__)


@bp.get("/")
@login_required
def dashboard() -> Any:
    tz, session = user_timezone(), get_session()
    summary = account_summary(session, current_user, tz=tz, now=datetime.now(UTC))
    last_30_days = parse_query(
        user_id=current_user.id, tz=tz, today=datetime.now(UTC).astimezone(tz).date(), raw_from=None, raw_to=None
    )
    chart = bar_chart(daily_series(session, last_30_days))
    return render_template("site/dashboard.html", summary=summary, chart=chart)


@bp.get("/lang/<code>")
def set_language(code: str) -> Any:
    response = make_response(redirect(safe_next_url(request.args.get("next"), url_for("site.dashboard"))))
    if code in LANGUAGES:
        response.set_cookie("lang", code, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response
