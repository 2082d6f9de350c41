"""Reading requests: JSON bodies for the API, web forms for pages (and nothing else), the refusal of
a service shown in the form that caused it, and redirects that stay on this site."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from flask import Flask, flash, request
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.datastructures import CombinedMultiDict

from ledger.errors import InvalidRequest, LedgerError, UnsupportedMediaType
from ledger.i18n import N_
from ledger.services.books.usage_reports import ReportQuery, parse_query
from ledger.web.context import now, user_timezone

T = TypeVar("T")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def json_body() -> dict[str, Any]:
    """The request body as a JSON object, or InvalidRequest."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting
        body = None
    if not isinstance(body, dict):
        raise InvalidRequest(N_("Send a JSON object as the body (Content-Type: application/json)."))
    return body


def report_query(args: Mapping[str, Any]) -> ReportQuery:
    """The signed-in person's report filters (`from`, `to`, `group_by`, `model`; none: the last 30
    days), in their time zone: for the usage API, the /usage page and the dashboard."""
    tz = user_timezone()
    return parse_query(
        user_id=current_user.id,
        tz=tz,
        today=now().astimezone(tz).date(),
        raw_from=args.get("from"),
        raw_to=args.get("to"),
        group_by=args.get("group_by"),
        model=args.get("model"),
    )


def report_filters(args: Mapping[str, Any]) -> tuple[ReportQuery, LedgerError | None]:
    """For a page's filter form: the filters asked for, or the last 30 days and why they were refused."""
    try:
        return report_query(args), None
    except LedgerError as refused:
        return report_query({}), refused


def safe_next_url(target: str | None, default: str, *, under: str = "/") -> str:
    """Where to go next, from a form or a query (`next=`, `back`): `target` only when it is a path
    on this site under `under`, else `default` (no open redirect, no header injection). Every
    redirect to a place a request names goes through here."""
    if not target or not target.isprintable():  # CR, LF and other controls never reach a Location header
        return default
    target = target.replace("\\", "/").strip()
    parts = urlsplit(urljoin(request.host_url, target))
    host = urlsplit(request.host_url)
    if (
        parts.scheme != host.scheme
        or parts.netloc != host.netloc
        or not target.startswith(under)
        or target.startswith("//")
    ):
        return default
    return target


def _pages_take_web_forms() -> None:
    """A page's POST carries a web form: any other body (JSON...) is 415, before a view reads it."""
    page_post = request.method == "POST" and not request.path.startswith("/api/")
    if page_post and request.mimetype and request.mimetype not in FORM_TYPES:  # "" : no body at all
        raise UnsupportedMediaType()


class Form(FlaskForm):
    """A page's form. `submit` runs the service call behind it; a refusal lands on the form:
    `status` is the answer's HTTP status and `error` the LedgerError, for the template."""

    status: int = 200
    error: LedgerError | None = None

    class Meta(FlaskForm.Meta):
        def wrap_formdata(self, form: Any, formdata: Any) -> Any:
            # Never a JSON body (Flask-WTF would take one): pages already answer it 415, this stays safe.
            return request.form if request.is_json else super().wrap_formdata(form, formdata)


class TextForm(Form):
    """A form of text fields only: a file part sent in a multipart body is never taken as text."""

    class Meta(Form.Meta):
        def wrap_formdata(self, form: Any, formdata: Any) -> Any:
            formdata = super().wrap_formdata(form, formdata)
            return request.form if isinstance(formdata, CombinedMultiDict) else formdata


def submit(form: Form, operation: Callable[[], T], *, fields: Mapping[str, str] | None = None) -> T | None:
    """Validate a posted form, then run `operation` (one service call). Returns its result, or None
    with the reason on the form: a field's own error (the service names the field; `fields` maps a
    service's name to the form's; the answer is then 422) or, for a refusal about the whole request,
    a form error (the answer keeps the refusal's status)."""
    if not form.validate_on_submit():
        form.status = 422 if form.is_submitted() else 200
        return None
    try:
        return operation()
    except LedgerError as exc:
        name = (fields or {}).get(exc.field or "", exc.field)
        target = form._fields.get(name) if name else None
        if target is not None:  # what the person typed: 422, as for the form's own checks
            target.errors.append(exc.translated())
            form.status = 422
        else:  # about the whole request (not found, gateway down, balance short...): its own status
            form.form_errors.append(exc.translated())
            form.status = exc.status
        form.error = exc
        return None


def flash_errors(form: Form, category: str = "danger") -> None:
    """Say a form's refusal on the next page (after a redirect, so that a reload posts nothing).
    A refusal that is not found (another person's order...) stays a 404 page."""
    if form.error is not None and form.error.status == 404:
        raise form.error
    for messages in form.errors.values():
        flash(" ".join(messages), category)


def init_app(app: Flask) -> None:
    app.before_request(_pages_take_web_forms)
