"""`GET /healthz`: 200 when the database answers, 503 when it does not. `GET /metrics`: Prometheus's
text format, to a bearer of METRICS_TOKEN only (SPEC 18)."""

import hmac
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ledger import metrics
from ledger.db import get_database, get_session
from ledger.errors import Unauthorized
from ledger.extensions import limiter
from ledger.i18n import N_
from ledger.web import schemas
from ledger.web.context import settings
from ledger.web.errors import answers_errors_as_text
from ledger.web.openapi import contract

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@contract(ok={200: schemas.Health, 503: schemas.Health}, tag="operations")
def healthz() -> Any:
    """200 when the database answers, 503 when it does not."""
    try:
        get_session().execute(text("SELECT 1"))
    except SQLAlchemyError:
        return jsonify(status="unavailable", database="unreachable"), 503
    return jsonify(status="ok")


@bp.get("/metrics")
@limiter.exempt
@answers_errors_as_text  # a scraper reads the refusal
def scrape() -> Any:
    token = settings().METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    bearer = scheme.lower() == "bearer"  # the scheme's case does not matter (RFC 9110); its presence does
    if not token or not bearer or not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode()):
        raise Unauthorized(N_("Send the metrics token: Authorization: Bearer <METRICS_TOKEN>."))
    return Response(metrics.scrape(get_database()), content_type=metrics.CONTENT_TYPE)
