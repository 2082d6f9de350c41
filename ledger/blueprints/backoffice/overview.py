"""`/admin`: the overview: today, 7 and 30 days of money and people, pending orders, active holds."""

from typing import Any

from flask import render_template

from ledger.blueprints.backoffice.blueprint import bp
from ledger.db import get_session
from ledger.services.backoffice.overview import overview
from ledger.web.charts import bar_chart
from ledger.web.context import now, user_timezone


@bp.get("")
def home() -> Any:
    figures = overview(get_session(), tz=user_timezone(), now=now())
    return render_template("admin/overview.html", figures=figures, chart=bar_chart(figures.daily))
