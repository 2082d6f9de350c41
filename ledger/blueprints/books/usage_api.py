"""`GET /api/usage/report`: the signed-in person's usage in a range, as JSON or CSV (SPEC 6, 8)."""

from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask_login import login_required

from ledger.db import get_session, stream_and_close, take_request_session
from ledger.errors import InvalidRange
from ledger.money import to_api
from ledger.services.books.usage_reports import csv_filename, export_csv, parse_format, parse_limit, usage_report
from ledger.web import schemas
from ledger.web.openapi import contract
from ledger.web.parsing import report_query
from ledger.web.serialisers import group_json, usage_json

bp = Blueprint("api_usage", __name__, url_prefix="/api/usage")


@bp.get("/report")
@login_required
@contract(
    query=schemas.ReportQuery, ok={200: None}, refusals=(InvalidRange,), auth="session", tag="usage"
)  # 200: JSON or CSV, see openapi
def report() -> Any:
    """The signed-in person's usage over a range: totals, groups by day or model, items a page at a time.

    With `format=csv`, every charge of the range as a CSV download.
    """
    q = report_query(request.args)
    if parse_format(request.args.get("format")) == "csv":
        return _csv(q)
    r = usage_report(get_session(), q, cursor=request.args.get("cursor"), limit=parse_limit(request.args.get("limit")))
    return jsonify(
        {
            "from": q.start.isoformat(),
            "to": q.end.isoformat(),
            "group_by": q.group_by,
            "model": q.model,
            "totals": {"count": r.count, "amount": to_api(r.amount)},
            "groups": [group_json(g) for g in r.groups],
            "items": [usage_json(i, q.tz) for i in r.items],
            "next_cursor": r.next_cursor,
        }
    )


def _csv(q: Any) -> Response:
    session = take_request_session()
    try:
        chunks = export_csv(session, q)  # runs the query now: an error is still an error response
    except BaseException:
        session.close()
        raise
    return Response(
        stream_and_close(chunks, session),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{csv_filename(q)}"', "Cache-Control": "no-store"},
    )
