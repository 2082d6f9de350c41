"""`POST /api/codes/redeem`: the signed-in person redeems a code (SPEC 14)."""

from typing import Any

from flask import Blueprint, jsonify
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.errors import AccountDisabled, CodeDisabled, CodeExpired, CodeNotFound, CodeUsed, TooManyCodeTries
from ledger.money import to_api
from ledger.services.growth.codes import redeem as redeem_code
from ledger.web import schemas
from ledger.web.context import request_context
from ledger.web.openapi import contract
from ledger.web.parsing import json_body

bp = Blueprint("api_codes", __name__, url_prefix="/api/codes")


@bp.post("/redeem")
@login_required
@contract(
    json=schemas.CodeBody,
    ok={200: schemas.Redeemed},
    refusals=(AccountDisabled, CodeNotFound, CodeUsed, CodeExpired, CodeDisabled, TooManyCodeTries),
    auth="session",
    tag="codes",
)
def redeem() -> Any:
    """Redeem a code (兑换码) for the signed-in person: its amount is credited once.

    429 after 10 unknown codes in an hour.
    """
    done = redeem_code(get_session(), current_user.id, json_body().get("code"), request_context())
    return jsonify(amount=to_api(done.amount), balance=to_api(done.balance))
