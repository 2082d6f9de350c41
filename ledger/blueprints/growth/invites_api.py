"""`POST /api/invites/register` (the signed-in person binds a code) and `POST /api/invites/reward` (internal)."""

from typing import Any

from flask import Blueprint, jsonify
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.errors import AlreadyInvited, InviteCodeNotFound, InviteCycle, InviteNotFound, SelfInvite
from ledger.models import Actor
from ledger.money import to_api
from ledger.services.growth.invites import bind_invite, display_name, reward_invite
from ledger.web import schemas
from ledger.web.auth import internal_only
from ledger.web.context import request_context
from ledger.web.openapi import contract
from ledger.web.parsing import json_body
from ledger.web.serialisers import iso

bp = Blueprint("api_invites", __name__, url_prefix="/api/invites")


@bp.post("/register")
@login_required
@contract(
    json=schemas.InviteCodeBody,
    ok={201: schemas.Bound},
    refusals=(InviteCodeNotFound, AlreadyInvited, SelfInvite, InviteCycle),
    auth="session",
    tag="invites",
)
def register() -> Any:
    """Bind the signed-in person to the inviter of `code` (once, within their first week)."""
    relation, inviter = bind_invite(
        get_session(), invitee=current_user, code=json_body().get("code"), ctx=request_context()
    )
    return jsonify(inviter=display_name(inviter), created_at=iso(relation.created_at)), 201


@bp.post("/reward")
@internal_only
@contract(
    json=schemas.InviteeBody, ok={200: schemas.Reward}, refusals=(InviteNotFound,), auth="internal", tag="invites"
)
def reward() -> Any:
    """Pay an invitation's rewards (once), when the SaaS decides the invitee qualified."""
    outcome = reward_invite(
        get_session(),
        invitee_id=json_body().get("invitee_id"),
        ctx=request_context(Actor.INTERNAL),
    )
    return jsonify(
        rewarded=outcome.rewarded,
        already_rewarded=outcome.already_rewarded,
        inviter_reward=to_api(outcome.inviter_reward),
        invitee_reward=to_api(outcome.invitee_reward),
    )
