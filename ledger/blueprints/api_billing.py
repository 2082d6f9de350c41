"""`POST /api/billing/deduct` (internal services) and `GET /api/billing/summary` (the signed-in person)."""

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.extensions import csrf
from ledger.models import UsageLog
from ledger.money import to_api
from ledger.services.billing import charge_usage
from ledger.services.invites import invite_overview
from ledger.services.summary import account_summary
from ledger.web import invite_link, iso, json_object, parse_uuid, request_origin, require_internal_token, user_timezone

bp = Blueprint("api_billing", __name__, url_prefix="/api/billing")


def usage_json(usage: UsageLog) -> dict[str, Any]:
    return {
        "usage_id": str(usage.id),
        "model": usage.model,
        "amount": to_api(usage.amount),
        "balance_after": to_api(usage.balance_after),
        "request_id": usage.request_id,
        "params": usage.params,
        "created_at": iso(usage.created_at),
    }


@bp.post("/deduct")
@csrf.exempt
def deduct() -> Any:
    require_internal_token()
    body = json_object()
    user_id = parse_uuid(body.get("user_id"), "user_id")
    charge = charge_usage(
        get_session(),
        user_id=user_id,
        amount=body.get("amount"),
        model=body.get("model"),
        request_id=body.get("request_id"),
        params=body.get("params"),
        origin=request_origin("internal"),
    )
    usage = charge.usage
    return jsonify(
        usage_id=str(usage.id),
        user_id=str(usage.user_id),
        amount=to_api(usage.amount),
        balance=to_api(charge.balance),
        request_id=usage.request_id,
        created_at=iso(usage.created_at),
        replayed=charge.replayed,
    )


@bp.get("/summary")
@login_required
def summary() -> Any:
    tz = user_timezone()
    invites = invite_overview(get_session(), current_user, limit=0)
    s = account_summary(get_session(), current_user, tz=tz, now=datetime.now(UTC))
    return jsonify(
        user_id=str(current_user.id),
        email=current_user.email,
        balance=to_api(s.balance),
        currency=s.currency,
        usage={
            "today": to_api(s.spent_today),
            "last_30_days": to_api(s.spent_30_days),
            "count_30_days": s.count_30_days,
        },
        recent_usage=[usage_json(u) for u in s.recent_usage],
        recent_transactions=[
            {
                "transaction_id": str(t.id),
                "status": t.status,
                "amount": to_api(t.amount),
                "provider_order_id": t.provider_order_id,
                "created_at": iso(t.created_at),
                "paid_at": iso(t.paid_at),
            }
            for t in s.recent_topups
        ],
        invites={
            "code": invites.code,
            "link": invite_link(invites.code),
            "invited_count": invites.invited_count,
            "rewards_total": to_api(invites.rewards_total),
        },
    )
