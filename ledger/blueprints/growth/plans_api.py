"""Plans (SPEC 21), for the SaaS's backend: subscribe a person to a plan, cancel a subscription's
auto-renew. A person does both on /plans (blueprints.growth.plans)."""

from typing import Any

from flask import Blueprint, jsonify, request

from ledger.db import get_session
from ledger.errors import (
    AccountDisabled,
    AlreadySubscribed,
    InsufficientBalance,
    InvalidRequest,
    PlanNotFound,
    PlanRetired,
    SpendingLimitReached,
    SubscriptionNotFound,
    UserNotFound,
)
from ledger.models import Actor
from ledger.services.growth import plans
from ledger.web import schemas
from ledger.web.auth import internal_only
from ledger.web.context import request_context
from ledger.web.openapi import contract
from ledger.web.parsing import json_body
from ledger.web.serialisers import subscription_json

bp = Blueprint("api_plans", __name__, url_prefix="/api/plans")


@bp.post("/subscribe")
@internal_only
@contract(
    json=schemas.SubscribeBody,
    ok={201: schemas.SubscriptionAnswer},
    refusals=(
        InsufficientBalance,
        SpendingLimitReached,
        AccountDisabled,
        UserNotFound,
        PlanNotFound,
        AlreadySubscribed,
        PlanRetired,
    ),
    auth="internal",
    tag="plans",
    examples={201: schemas.SUBSCRIBED},
)
def subscribe() -> Any:
    """Subscribe a person to a plan (套餐).

    The first period starts now and ends at the same local time a week or a calendar month later, in the
    person's time zone. Its price is charged from the balance (a charge of model `plan:<code>`, request id
    `subscription:<id>:1`), then the allowance is granted as plan money that expires at the period's end. At each
    period's end the price is charged again (event `subscription.renewed`) until the subscription is cancelled,
    the plan retired or the balance short (event `subscription.lapsed`). A person holds a plan once: a second
    subscribe answers 409 `already_subscribed`, naming the subscription, and charges nothing.
    """
    body = json_body()
    done = plans.subscribe(get_session(), request_context(Actor.INTERNAL), body.get("user_id"), body.get("plan"))
    return jsonify(subscription_json(done)), 201


@bp.post("/subscriptions/<subscription_id>/cancel")
@internal_only
@contract(
    ok={200: schemas.SubscriptionAnswer},
    refusals=(SubscriptionNotFound, InvalidRequest),  # a body that is not a JSON object
    auth="internal",
    tag="plans",
    examples={200: schemas.CANCELLED},
)
def cancel(subscription_id: str) -> Any:
    """Cancel a subscription's auto-renew.

    It stays `cancelled`, with its allowance, until the period ends; then it lapses and nothing more is charged.
    Idempotent: a cancelled or lapsed subscription is answered as it is.
    """
    if request.get_data():  # no body is needed; an empty JSON object is fine, anything else is a mistake
        json_body()
    done = plans.cancel(get_session(), request_context(Actor.INTERNAL), subscription_id)
    return jsonify(subscription_json(done))
