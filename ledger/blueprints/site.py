"""The dashboard and the language switch."""

from typing import Any

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.services.books.summary import account_summary
from ledger.services.books.usage_reports import daily_series
from ledger.services.console.pricing import MODELS
from ledger.services.growth import plans
from ledger.web.charts import bar_chart
from ledger.web.context import now, settings, user_timezone
from ledger.web.language import LANGUAGES
from ledger.web.parsing import report_query, safe_next_url

bp = Blueprint("site", __name__)


@bp.get("/")
@login_required
def dashboard() -> Any:
    session = get_session()
    summary = account_summary(session, current_user, tz=user_timezone(), now=now())
    chart = bar_chart(daily_series(session, report_query({})))
    return render_template(
        "site/dashboard.html",
        summary=summary,
        kinds=summary.kinds,  # the balance line's and the header's (base.html) breakdown
        chart=chart,
        models=MODELS.values(),
        minimum=settings().TOPUP_MIN,
        held=plans.holdings(session, current_user.id, now()),  # the plans line (SPEC 21)
        lapsed=plans.lapsed_for_money(session, current_user.id, now()),
    )


@bp.get("/lang/<code>")
def set_language(code: str) -> Any:
    response = make_response(redirect(safe_next_url(request.args.get("next"), url_for("site.dashboard"))))
    if code in LANGUAGES:
        response.set_cookie("lang", code, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response
