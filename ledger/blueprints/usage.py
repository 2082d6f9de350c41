"""`/usage`: filters, totals, a per-day chart, a per-model table, paginated details, CSV download."""

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from ledger.charts import bar_chart
from ledger.db import get_session
from ledger.services.errors import InvalidRequest
from ledger.services.reports import InvalidRange, parse_query, usage_report
from ledger.web import user_timezone

bp = Blueprint("usage", __name__)


@bp.get("/usage")
@login_required
def usage() -> Any:
    tz = user_timezone()
    today = datetime.now(UTC).astimezone(tz).date()
    error, status = None, 200
    try:
        q = parse_query(
            user_id=current_user.id,
            tz=tz,
            today=today,
            raw_from=request.args.get("from"),
            raw_to=request.args.get("to"),
            model=request.args.get("model"),
        )
    except (InvalidRange, InvalidRequest) as exc:
        error, status = exc.message, 422
        q = parse_query(user_id=current_user.id, tz=tz, today=today, raw_from=None, raw_to=None)
    session = get_session()
    by_day = usage_report(session, q, cursor=request.args.get("cursor") or None, limit=25)
    by_model = usage_report(session, replace(q, group_by="model", model=None), limit=0)
    filters = {"from": q.start.isoformat(), "to": q.end.isoformat(), **({"model": q.model} if q.model else {})}
    return render_template(
        "usage/usage.html",
        q=q,
        report=by_day,
        models=by_model.groups,
        chart=bar_chart(by_day.daily()),
        filters=filters,
        error=error,
    ), status
