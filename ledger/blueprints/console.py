"""`/console`: pick a model, see its price, run it; the run is charged through `charge_usage`."""

import uuid
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from ledger.db import get_session
from ledger.models import UsageLog
from ledger.money import format_amount, to_api
from ledger.services.billing import get_balance
from ledger.services.console import MODELS, quote, run_model
from ledger.services.errors import InsufficientBalance, InvalidRequest, RequestIdConflict, UnknownModel
from ledger.web import request_origin

bp = Blueprint("console", __name__)


@bp.get("/console")
@login_required
def console() -> Any:
    session = get_session()
    selected = request.args.get("model") if request.args.get("model") in MODELS else None
    quotes, errors = {}, {}
    for model_id in MODELS:
        # The model just adjusted (no-JS "update price") keeps its values; the others show defaults.
        try:
            quotes[model_id] = quote(model_id, request.args if model_id == selected else {})
        except InvalidRequest as exc:
            errors[model_id] = exc.message
            quotes[model_id] = quote(model_id, {})
    result = None
    if request.args.get("result"):
        try:
            usage_id = uuid.UUID(request.args["result"])
        except ValueError:
            usage_id = None
        # Ownership is part of the query: another person's usage id finds nothing.
        result = usage_id and session.scalar(
            select(UsageLog).where(UsageLog.id == usage_id, UsageLog.user_id == current_user.id)
        )
    return render_template(
        "console/console.html",
        models=MODELS,
        quotes=quotes,
        errors=errors,
        selected=selected,
        result=result,
        balance=get_balance(session, current_user.id),
    )


@bp.post("/console/run")
@login_required
def run() -> Any:
    model_id = request.form.get("model", "")
    if request.form.get("action") == "quote":  # "update price" without JavaScript: nothing is charged
        return redirect(url_for("console.console", model=model_id, **_params(model_id)))
    try:
        run_id = uuid.UUID(request.form.get("request_id", ""))
    except ValueError:
        run_id = uuid.uuid4()
    try:
        _priced, charge = run_model(
            get_session(),
            user_id=current_user.id,
            model_id=model_id,
            raw_params=request.form,
            run_id=run_id,
            origin=request_origin(),
        )
    except InsufficientBalance as exc:
        flash(
            _("Your balance (¥%(balance)s) is too low for this run.", balance=format_amount(exc.balance)),
            "insufficient",
        )
        return redirect(url_for("console.console", model=model_id, **_params(model_id)))
    except (InvalidRequest, UnknownModel, RequestIdConflict) as exc:
        flash(exc.message, "danger")
        return redirect(url_for("console.console"))
    if charge.replayed:
        flash(_("This run was already charged; showing its result."), "info")
    return redirect(url_for("console.console", result=str(charge.usage.id)))


def _params(model_id: str) -> dict[str, str]:
    model = MODELS.get(model_id)
    return {p.name: request.form.get(p.name, "") for p in model.params} if model else {}


@bp.get("/api/console/quote")
@login_required
def quote_api() -> Any:
    priced = quote(request.args.get("model", ""), request.args)
    return jsonify(
        model=priced.model.id,
        amount=to_api(priced.amount),
        unit_price=to_api(priced.unit_price),
        quantity=str(priced.quantity),
        display=format_amount(priced.amount),
    )
