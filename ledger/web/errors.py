"""One way to say no: a LedgerError (or an HTTP error, a failed CSRF check, a crash) becomes SPEC 6
JSON on /api/ routes and a translated page elsewhere.

Page routes that show a refusal inside their own form use `parsing.submit`; everything else that
raises reaches the handlers here. Messages are translated when the answer is made, in the person's
language (ledger.web.language).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from flask import Flask, Response, current_app, jsonify, make_response, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ledger.db import is_disconnect
from ledger.errors import LedgerError, Unauthorized
from ledger.i18n import N_
from ledger.money import to_api

F = TypeVar("F", bound=Callable[..., Any])

# What a person is told for an HTTP error raised outside our services (routing, limits, sizes).
HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", N_("This request could not be understood.")),
    401: ("unauthorized", N_("Sign in to continue.")),
    403: ("forbidden", N_("You may not do this.")),
    404: ("not_found", N_("This page does not exist.")),
    405: ("method_not_allowed", N_("This address does not accept this kind of request.")),
    413: ("request_entity_too_large", N_("What you sent is too large.")),
    415: ("unsupported_media_type", N_("This kind of content is not accepted here.")),
    429: ("too_many_requests", N_("Too many attempts. Please wait a moment and try again.")),
}
INTERNAL_ERROR = ("internal_error", N_("Something went wrong on our side. Please try again."))
SIGN_IN_FIRST = N_("Sign in to use this API.")
CSRF_FAILED = N_("This form has expired or was not sent from this site. Please reload the page and try again.")


class HttpError(LedgerError):
    """An HTTP error of Werkzeug's (404 for an unknown path, 429 from the rate limiter...), in our words."""

    def __init__(self, status: int) -> None:
        code, message = HTTP_ERRORS.get(status, INTERNAL_ERROR if status >= 500 else HTTP_ERRORS[400])
        super().__init__(message)
        self.code, self.status = code, status  # type: ignore[misc]


class CsrfFailed(LedgerError):
    code, status = "csrf_failed", 400
    message = CSRF_FAILED


class DatabaseUnavailable(LedgerError):
    code, status = "database_unavailable", 503
    message = N_("The service is briefly unavailable. Please try again in a moment.")


class InternalError(LedgerError):
    code, status = INTERNAL_ERROR[0], 500
    message = INTERNAL_ERROR[1]


def answers_errors_as_text(view: F) -> F:
    """For a route whose caller is a machine that reads a plain text answer (XorPay's notify)."""
    view.errors_as_text = True  # type: ignore[attr-defined]
    return view


def error_body(error: LedgerError) -> dict[str, Any]:
    """SPEC 6: {"error": {"code", "message", "field"?, ...details}}; money as API strings."""
    body: dict[str, Any] = {"code": error.code, "message": error.translated()}
    if error.field:
        body["field"] = error.field
    body.update({k: to_api(v) if isinstance(v, Decimal) else v for k, v in error.details.items()})
    return body


def render_error(error: LedgerError) -> Response:
    """The answer for `error`: JSON on the API, plain text for machines that want it, else a page."""
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "errors_as_text", False):
        response = make_response(str(error), error.status)  # untranslated: a machine reads it
        response.mimetype = "text/plain"
    elif request.path.startswith("/api/"):
        response = make_response(jsonify(error=error_body(error)), error.status)
    else:
        page = render_template("errors/error.html", status=error.status, message=error.translated())
        response = make_response(page, error.status)
    return response


def _csrf_error(_exc: CSRFError) -> Response:
    # CSRF is checked before the view: an API caller who is not signed in should first hear that.
    if request.path.startswith("/api/") and not current_user.is_authenticated:
        return render_error(Unauthorized(SIGN_IN_FIRST))
    return render_error(CsrfFailed())


def _http_error(exc: HTTPException) -> Response:
    response = render_error(HttpError(exc.code or 500))
    for name, value in exc.get_headers():  # keep Allow (405), Retry-After (429)
        if name.lower() in ("allow", "retry-after"):
            response.headers[name] = value
    return response


def _unexpected(exc: Exception) -> Response:
    if is_disconnect(exc):  # PostgreSQL restarting or unreachable: the pool replaces its connections
        current_app.logger.warning("database unavailable: %s", exc.__class__.__name__)
        response = render_error(DatabaseUnavailable())
        response.headers["Retry-After"] = "1"
        return response
    current_app.logger.exception("unhandled error")
    return render_error(InternalError())


def init_app(app: Flask) -> None:
    app.register_error_handler(LedgerError, render_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    if not app.debug:  # in debug, let the debugger show the traceback
        app.register_error_handler(Exception, _unexpected)
