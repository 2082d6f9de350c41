"""`/admin/audit`: the audit trail, filtered by person, action, actor and dates."""

from datetime import date
from typing import Any

from flask import render_template, request

from ledger.blueprints.backoffice.blueprint import bp
from ledger.db import get_session
from ledger.models import Actor
from ledger.services.backoffice.people import audit_trail, emails_of
from ledger.validation import day
from ledger.web.context import user_timezone


@bp.get("/audit")
def audit() -> Any:
    args = request.args
    since = _day(args.get("from"), "from")
    until = _day(args.get("to"), "to")
    rows = audit_trail(
        get_session(),
        person_query=args.get("person"),
        action=args.get("action"),
        actor=args.get("actor"),
        since=since,
        until=until,
        tz=user_timezone(),
    )
    return render_template(
        "admin/audit.html",
        rows=rows,
        emails=emails_of(get_session(), (a.user_id for a in rows)),
        args=args,
        actors=list(Actor),
    )


def _day(raw: str | None, field: str) -> date | None:
    return day(raw, field, first=date(1970, 1, 1), last=date(9999, 12, 30)) if raw else None
