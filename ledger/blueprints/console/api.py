"""`GET /api/console/quote`: the price of a console run, for the page's script (session)."""

from typing import Any

from flask import Blueprint, jsonify, request
from flask_login import login_required

from ledger.errors import UnknownModel
from ledger.money import format_amount, to_api
from ledger.services.console.pricing import quote as price_of
from ledger.web import schemas
from ledger.web.openapi import contract

bp = Blueprint("console_api", __name__)


@bp.get("/api/console/quote")
@login_required
@contract(query=schemas.QuoteQuery, ok={200: schemas.Quote}, refusals=(UnknownModel,), auth="session", tag="console")
def quote() -> Any:
    """The price of one run of a console model with the given parameters."""
    priced = price_of(request.args.get("model"), request.args)
    return jsonify(
        model=priced.model.id,
        amount=to_api(priced.amount),
        unit_price=to_api(priced.unit_price),
        quantity=str(priced.quantity),
        display=format_amount(priced.amount),
    )
