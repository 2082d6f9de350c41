"""`POST /api/billing/deduct` (internal services) and `GET /api/billing/summary` (the signed-in person)."""

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.models import Actor
from ledger.money import to_api
from ledger.services.batches import charge_batch
from ledger.services.charges import charge_usage
from ledger.services.invites import invite_overview
from ledger.services.summary import account_summary
from ledger.web.auth import internal_only
from ledger.web.context import request_origin, settings, user_timezone
from ledger.web.parsing import json_body
from ledger.web.serialisers import batch_item_json, charge_json, order_json, usage_json
from ledger.web.templating import invite_link

bp = Blueprint("api_billing", __name__, url_prefix="/api/billing")


@bp.post("/deduct")
@internal_only
def deduct() -> Any:
    body = json_body()
    charge = charge_usage(
        get_session(),
        user_id=body.get("user_id"),
        amount=body.get("amount"),
        model=body.get("model"),
        request_id=body.get("request_id"),
        params=body.get("params"),
        origin=request_origin(Actor.INTERNAL),
        low_balance=settings().LOW_BALANCE_THRESHOLD,
    )
    return jsonify(charge_json(charge.usage, charge.balance, replayed=charge.replayed))


@bp.post("/deduct/batch")
@internal_only
def deduct_batch() -> Any:
    results = charge_batch(
        get_session(),
        charges=json_body().get("charges"),
        origin=request_origin(Actor.INTERNAL),
        low_balance=settings().LOW_BALANCE_THRESHOLD,
    )
    return jsonify(results=[batch_item_json(r) for r in results])


@bp.get("/summary")
@login_required
def summary() -> Any:
    session = get_session()
    invites = invite_overview(session, current_user, limit=0)
    s = account_summary(session, current_user, tz=user_timezone(), now=datetime.now(UTC))
    return jsonify(
        user_id=str(current_user.id),
        email=current_user.email,
        balance=to_api(s.balance),
        held=to_api(s.on_hold.held),
        available=to_api(s.available),
        currency=s.currency,
        usage={
            "today": to_api(s.spent_today),
            "last_30_days": to_api(s.spent_30_days),
            "count_30_days": s.count_30_days,
        },
        recent_usage=[usage_json(u) for u in s.recent_usage],
        recent_transactions=[order_json(t) for t in s.recent_topups],
        invites={
            "code": invites.code,
            "link": invite_link(invites.code),
            "invited_count": invites.invited_count,
            "rewards_total": to_api(invites.rewards_total),
        },
    )
