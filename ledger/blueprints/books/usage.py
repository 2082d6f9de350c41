"""`/usage`: filters, totals, a per-day chart, a per-model table, paginated details, CSV download."""

from dataclasses import replace
from typing import Any

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.services.books.holds import money_on_hold
from ledger.services.books.usage_reports import usage_report
from ledger.web.charts import bar_chart
from ledger.web.context import now
from ledger.web.parsing import report_filters

bp = Blueprint("usage", __name__)
PAGE_SIZE = 25


@bp.get("/usage")
@login_required
def usage() -> Any:
    q, refused = report_filters(request.args)
    q = replace(q, group_by="day")  # the page shows both groupings: by day here, by model below
    session = get_session()
    by_day = usage_report(session, q, cursor=request.args.get("cursor") or None, limit=PAGE_SIZE)
    by_model = usage_report(session, replace(q, group_by="model", model=None), limit=0)
    filters = {"from": q.start.isoformat(), "to": q.end.isoformat(), **({"model": q.model} if q.model else {})}
    return render_template(
        "usage/usage.html",
        q=q,
        report=by_day,
        models=by_model.groups,
        chart=bar_chart(by_day.daily()),
        filters=filters,
        on_hold=money_on_hold(session, current_user.id, now=now()),
        error=refused.translated() if refused else None,
    ), refused.status if refused else 200
