"""Accounts for the SaaS's own backend (SPEC 25): create or find a person, read their account, and
ask for a portal link that signs them in to Ledger's pages."""

from typing import Any

from flask import Blueprint, jsonify, request

from ledger.db import get_session
from ledger.errors import AccountDisabled, AdminAccount, UserConflict, UsernameTaken, UserNotFound
from ledger.models import Actor, User
from ledger.services.people.backend_accounts import account_money, create_or_find_user, find_user
from ledger.services.people.portal import create_portal_link
from ledger.web import schemas
from ledger.web.auth import internal_only
from ledger.web.context import now, request_context
from ledger.web.openapi import contract
from ledger.web.parsing import json_body
from ledger.web.serialisers import account_json, iso

bp = Blueprint("api_users", __name__, url_prefix="/api/users")


def _account(user: User, status: int = 200) -> Any:
    return jsonify(account_json(user, account_money(get_session(), user.id, now=now()))), status


@bp.post("")
@internal_only
@contract(
    json=schemas.UserBody,
    ok={200: schemas.Account, 201: schemas.Account},
    refusals=(UserConflict, UsernameTaken),
    auth="internal",
    tag="users",
)
def create() -> Any:
    """Create a person's account, or find it.

    201 with a new account (no password: the person comes in through portal links until they set one);
    200 with the same account when its email is known already, the same `external_id` with it (an account
    found by email that has no `external_id` yet takes the one sent). 409 `user_conflict` when the email or
    the `external_id` belongs to another account.
    """
    body = json_body()
    found = create_or_find_user(
        get_session(),
        email=body.get("email"),
        external_id=body.get("external_id"),
        username=body.get("username"),
        ctx=request_context(Actor.INTERNAL),
    )
    return _account(found.user, 201 if found.created else 200)


@bp.get("")
@internal_only
@contract(query=schemas.UserQuery, ok={200: schemas.Account}, refusals=(UserNotFound,), auth="internal", tag="users")
def look_up() -> Any:
    """Find a person's account by `email` or by your `external_id` (give one of the two)."""
    return _account(
        find_user(get_session(), email=request.args.get("email"), external_id=request.args.get("external_id"))
    )


@bp.get("/<user_id>")
@internal_only
@contract(ok={200: schemas.Account}, refusals=(UserNotFound,), auth="internal", tag="users")
def read(user_id: str) -> Any:
    """A person's account: who they are and their money (balance, held, available, and by kind)."""
    return _account(find_user(get_session(), user_id=user_id))


@bp.post("/<user_id>/portal")
@internal_only
@contract(
    json=schemas.PortalBody,
    ok={201: schemas.PortalLink},
    refusals=(AccountDisabled, AdminAccount, UserNotFound),
    auth="internal",
    tag="users",
)
def portal_link(user_id: str) -> Any:
    """A link that signs the person in to Ledger's pages: send their browser to `url`.

    It works once, within 10 minutes, and lands on `next`; the pages then show a link back to `return_url`.
    """
    body = json_body()
    link = create_portal_link(
        get_session(),
        user_id=user_id,
        landing=body.get("next"),
        return_url=body.get("return_url"),
        ctx=request_context(Actor.INTERNAL),
    )
    return jsonify(url=link.url, expires_at=iso(link.expires_at)), 201
