"""`POST /api/billing/deduct` (internal services) and `GET /api/billing/summary` (the signed-in person)."""

from typing import Any

from flask import Blueprint, jsonify
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.errors import AccountDisabled, InsufficientBalance, RequestIdConflict, SpendingLimitReached, UserNotFound
from ledger.models import Actor
from ledger.money import to_api
from ledger.services.books.batch_charges import charge_batch
from ledger.services.books.charges import charge_usage
from ledger.services.books.summary import account_summary
from ledger.services.growth.invites import invite_overview
from ledger.web import schemas
from ledger.web.auth import internal_only
from ledger.web.context import now, request_context, user_timezone
from ledger.web.openapi import contract
from ledger.web.parsing import json_body
from ledger.web.serialisers import batch_json, charge_json, iso, order_json, usage_json
from ledger.web.templating import invite_link

bp = Blueprint("api_billing", __name__, url_prefix="/api/billing")


@bp.post("/deduct")
@internal_only
@contract(
    json=schemas.DeductBody,
    ok={200: schemas.Charge},
    refusals=(InsufficientBalance, SpendingLimitReached, AccountDisabled, UserNotFound, RequestIdConflict),
    auth="internal",
    tag="billing",
)
def deduct() -> Any:
    """Charge a person for one use of a paid feature.

    Atomic and idempotent by `request_id`: a repeat answers the first charge with `replayed` true; the same
    id with another amount or model is a 409. Refused with 402 when the available amount (balance minus
    holds) is short.
    """
    body = json_body()
    charge = charge_usage(
        get_session(),
        user_id=body.get("user_id"),
        amount=body.get("amount"),
        model=body.get("model"),
        request_id=body.get("request_id"),
        params=body.get("params"),
        ctx=request_context(Actor.INTERNAL),
    )
    return jsonify(charge_json(charge.usage, charge.balance, replayed=charge.replayed))


@bp.post("/deduct/batch")
@internal_only
@contract(json=schemas.BatchBody, ok={200: schemas.BatchAnswer}, auth="internal", tag="billing")
def deduct_batch() -> Any:
    """Charge up to 1,000 uses in one call, each item on its own.

    Each item succeeds or fails alone, answered in order exactly as a single deduct would answer it
    (`status` charged, replayed or the refusal's code); a person's items apply in their order, and
    replays work within a batch and across calls. Only a body whose `charges` is not a list of 1 to
    1,000 objects is refused whole, with nothing charged.
    """
    results = charge_batch(
        get_session(),
        charges=json_body().get("charges"),
        ctx=request_context(Actor.INTERNAL),
    )
    return jsonify(results=batch_json(results))


@bp.get("/summary")
@login_required
@contract(ok={200: schemas.Summary}, auth="session", tag="account")
def summary() -> Any:
    """The signed-in person's balance, what is held, spending and invitations."""
    session = get_session()
    invites = invite_overview(session, current_user, limit=0)
    s = account_summary(session, current_user, tz=user_timezone(), now=now())
    return jsonify(
        user_id=str(current_user.id),
        email=current_user.email,
        balance=to_api(s.balance),
        held=to_api(s.on_hold.held),
        available=to_api(s.available),
        currency=s.currency,
        paid=to_api(s.kinds.paid),
        granted=to_api(s.kinds.granted),
        plan=to_api(s.kinds.plan),
        expiring=[
            {"amount": to_api(lot.remaining), "expires_at": iso(lot.expires_at), "category": lot.category.value}
            for lot in s.kinds.expiring
        ],
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
