"""`GET /api/usage/report`: the signed-in person's usage in a range, as JSON or CSV (SPEC 6, 8)."""

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask_login import current_user, login_required

from ledger.db import get_session, stream_and_close, take_request_session
from ledger.money import to_api
from ledger.services.reports import ReportQuery, csv_filename, export_csv, parse_limit, parse_query, usage_report
from ledger.web import iso, user_timezone

bp = Blueprint("api_usage", __name__, url_prefix="/api/usage")


def report_query() -> ReportQuery:
    """The filters of the request (shared with the /usage page)."""
    tz = user_timezone()
    return parse_query(
        user_id=current_user.id,
        tz=tz,
        today=datetime.now(UTC).astimezone(tz).date(),
        raw_from=request.args.get("from"),
        raw_to=request.args.get("to"),
        group_by=request.args.get("group_by"),
        model=request.args.get("model"),
    )


@bp.get("/report")
@login_required
def report() -> Any:
    q = report_query()
    fmt = request.args.get("format", "json")
    if fmt == "csv":
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
    if fmt != "json":
        return jsonify(error={"code": "invalid_request", "message": "format must be json or csv"}), 422
    r = usage_report(get_session(), q, cursor=request.args.get("cursor"), limit=parse_limit(request.args.get("limit")))
    return jsonify(
        {
            "from": q.start.isoformat(),
            "to": q.end.isoformat(),
            "group_by": q.group_by,
            "model": q.model,
            "totals": {"count": r.count, "amount": to_api(r.amount)},
            "groups": [{"key": g.key, "count": g.count, "amount": to_api(g.amount)} for g in r.groups],
            "items": [
                {
                    "usage_id": str(i.id),
                    "created_at": iso(i.created_at, q.tz),
                    "model": i.model,
                    "amount": to_api(i.amount),
                    "balance_after": to_api(i.balance_after),
                    "request_id": i.request_id,
                    "params": i.params,
                }
                for i in r.items
            ],
            "next_cursor": r.next_cursor,
        }
    )
