"""`POST /api/invites/register` (the signed-in person binds a code) and `POST /api/invites/reward` (internal)."""

from typing import Any

from flask import Blueprint, jsonify
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.extensions import csrf
from ledger.money import to_api
from ledger.services.invites import Rewards, bind_invite, display_name, reward_invite
from ledger.web import iso, json_object, parse_uuid, request_origin, require_internal_token, settings

bp = Blueprint("api_invites", __name__, url_prefix="/api/invites")


@bp.post("/register")
@login_required
def register() -> Any:
    relation, inviter = bind_invite(
        get_session(), invitee=current_user, code=json_object().get("code"), origin=request_origin()
    )
    return jsonify(inviter=display_name(inviter), created_at=iso(relation.created_at)), 201


@bp.post("/reward")
@csrf.exempt
def reward() -> Any:
    require_internal_token()
    invitee_id = parse_uuid(json_object().get("invitee_id"), "invitee_id")
    outcome = reward_invite(
        get_session(),
        invitee_id=invitee_id,
        rewards=Rewards.from_settings(settings()),
        origin=request_origin("internal"),
    )
    return jsonify(
        rewarded=outcome.rewarded,
        already_rewarded=outcome.already_rewarded,
        inviter_reward=to_api(outcome.inviter_reward),
        invitee_reward=to_api(outcome.invitee_reward),
    )
