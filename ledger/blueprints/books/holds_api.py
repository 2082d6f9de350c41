"""Holds for long jobs (SPEC 11), for other services of the SaaS: place, capture, release, read."""

from typing import Any

from flask import Blueprint, jsonify, request

from ledger.db import get_session
from ledger.errors import (
    AccountDisabled,
    CaptureExceedsHold,
    HoldNotFound,
    HoldSettled,
    InsufficientBalanceToHold,
    InvalidRequest,
    RequestIdConflict,
    SpendingLimitReached,
    UserNotFound,
)
from ledger.models import Actor
from ledger.services.books.holds import capture_hold, place_hold, release_hold, view_hold
from ledger.web import schemas
from ledger.web.auth import internal_only
from ledger.web.context import now, request_context
from ledger.web.openapi import contract
from ledger.web.parsing import json_body
from ledger.web.serialisers import hold_answer_json, hold_json

bp = Blueprint("api_holds", __name__, url_prefix="/api/billing/holds")


@bp.post("")
@internal_only
@contract(
    json=schemas.HoldBody,
    ok={200: schemas.HoldAnswer, 201: schemas.HoldAnswer},
    refusals=(InsufficientBalanceToHold, SpendingLimitReached, AccountDisabled, UserNotFound, RequestIdConflict),
    auth="internal",
    tag="holds",
    examples={200: {**schemas.HOLD_ANSWERS["placed"], "replayed": True}, 201: schemas.HOLD_ANSWERS["placed"]},
)
def place() -> Any:
    """Hold money for a long job.

    The amount stops being available until the hold is captured, released or expires (`ttl_seconds`).
    201 for a new hold; a repeat of the same request answers 200 with `replayed` true.
    """
    body = json_body()
    answer = place_hold(
        get_session(),
        user_id=body.get("user_id"),
        amount=body.get("amount"),
        model=body.get("model"),
        request_id=body.get("request_id"),
        params=body.get("params"),
        ttl_seconds=body.get("ttl_seconds"),
        ctx=request_context(Actor.INTERNAL),
    )
    return jsonify(hold_answer_json(answer)), 200 if answer.replayed else 201


@bp.post("/<hold_id>/capture")
@internal_only
@contract(
    json=schemas.CaptureBody,
    ok={200: schemas.HoldAnswer},
    refusals=(AccountDisabled, HoldNotFound, HoldSettled, CaptureExceedsHold),
    auth="internal",
    tag="holds",
    examples={200: schemas.HOLD_ANSWERS["captured"]},
)
def capture(hold_id: str) -> Any:
    """Charge what the job cost (at most the hold); the rest is released. Idempotent.

    The answer is the hold: `amount` (and `held_amount`) is what was held, `captured_amount` what was
    charged, `released_amount` what went back.
    """
    answer = capture_hold(
        get_session(), hold_id=hold_id, amount=json_body().get("amount"), ctx=request_context(Actor.INTERNAL)
    )
    return jsonify(hold_answer_json(answer))


@bp.post("/<hold_id>/release")
@internal_only
@contract(
    ok={200: schemas.HoldAnswer},
    refusals=(HoldNotFound, HoldSettled, InvalidRequest),  # a body that is not a JSON object
    auth="internal",
    tag="holds",
    examples={200: schemas.HOLD_ANSWERS["released"]},
)
def release(hold_id: str) -> Any:
    """Give the whole hold back (the job failed). Idempotent."""
    if request.get_data():  # no body is needed; an empty JSON object is fine, anything else is a mistake
        json_body()
    answer = release_hold(get_session(), hold_id=hold_id, ctx=request_context(Actor.INTERNAL))
    return jsonify(hold_answer_json(answer))


@bp.get("/<hold_id>")
@internal_only
@contract(ok={200: schemas.Hold}, refusals=(HoldNotFound,), auth="internal", tag="holds")
def show(hold_id: str) -> Any:
    """A hold as it is now."""
    return jsonify(hold_json(view_hold(get_session(), hold_id=hold_id, now=now())))
