"""`POST /api/codes/redeem`: the signed-in person redeems a code (SPEC 14)."""

from typing import Any

from flask import Blueprint, jsonify
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.money import to_api
from ledger.services.codes import redeem as redeem_code
from ledger.web.context import request_origin
from ledger.web.parsing import json_body

bp = Blueprint("api_codes", __name__, url_prefix="/api/codes")


@bp.post("/redeem")
@login_required
def redeem() -> Any:
    done = redeem_code(get_session(), current_user.id, json_body().get("code"), request_origin())
    return jsonify(amount=to_api(done.amount), balance=to_api(done.balance))
