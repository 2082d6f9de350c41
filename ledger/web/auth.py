"""Who is asking: the signed-in person (Flask-Login, backed by a user_sessions row) or another
service of the SaaS (the internal token)."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Request, abort, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import current_user, login_user

from ledger.db import get_session
from ledger.errors import Unauthorized
from ledger.extensions import csrf, limiter, login_manager
from ledger.i18n import N_
from ledger.models import User, UserSession
from ledger.services.people.sign_in import load_session_user, start_session
from ledger.web.context import now, request_context, settings
from ledger.web.errors import SIGN_IN_FIRST, render_error

F = TypeVar("F", bound=Callable[..., Any])
SESSION_ID_KEY = "sid"  # the user_sessions row of this browser's login


def current_session_id() -> str | None:
    """The id of this browser's login session (its user_sessions row)."""
    return session.get(SESSION_ID_KEY)


RETURN_URL_KEY = "return_url"  # where a portal link's "back" leads (SPEC 25), for this login


def sign_in(user: User) -> None:
    """A fresh login session: a new user_sessions row and a cleared cookie (no session fixation)."""
    remember_login(user, start_session(get_session(), user, ctx=request_context()))


def remember_login(user: User, login: UserSession, *, return_url: str | None = None) -> None:
    """This browser's cookie carries `login` (a user_sessions row), cleared first (no session fixation)."""
    session.clear()
    session.permanent = True
    session[SESSION_ID_KEY] = str(login.id)
    if return_url:
        session[RETURN_URL_KEY] = return_url
    login_user(user)


def portal_return_url() -> str | None:
    """The SaaS's page this login came from through a portal link, for the pages' "back" link."""
    return session.get(RETURN_URL_KEY) if current_user.is_authenticated else None


def internal_only(view: F) -> F:
    """A route for other services of the SaaS: header x-internal-token equal to INTERNAL_API_KEY
    (compared in constant time); no CSRF token and no per-IP rate limit (no browser is involved:
    the token is the credential, and these are the hot paths)."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        given = request.headers.get("x-internal-token", "").encode("utf-8", "replace")
        expected = settings().INTERNAL_API_KEY.encode()
        if not expected or not hmac.compare_digest(given, expected):
            raise Unauthorized(N_("Missing or wrong x-internal-token header."))
        g.internal = True  # for the request's log line: a service of the SaaS called
        return view(*args, **kwargs)

    return limiter.exempt(csrf.exempt(checked))  # type: ignore[return-value]


def _load_user(user_id: str) -> User | None:
    return load_session_user(get_session(), user_id=user_id, session_id=current_session_id(), now=now())


def unauthorized() -> Any:
    """Not signed in: 401 on the API, the sign-in page (coming back here after) elsewhere."""
    if request.path.startswith("/api/"):
        return render_error(Unauthorized(SIGN_IN_FIRST))
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without building the cookie's signer for a request that sends
    no cookie (every call of another service, a first visit): that was 3 % of an internal charge's
    Python under load (py-spy)."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()  # what Flask answers for no cookie, signer or not
        return super().open_session(app, request)


BACK_OFFICE = "/admin"


def guard_back_office(app: Flask) -> None:
    """The back office does not exist for anyone but admins (SPEC 13): 404 for every path under
    /admin and every method, signed in or not. Registered before CSRF's check and answered before
    routing, so that neither a 400 (no CSRF token) nor a 405 (wrong method) maps its routes."""

    @app.before_request
    def _admins_only() -> None:
        inside = request.path == BACK_OFFICE or request.path.startswith(BACK_OFFICE + "/")
        if inside and not (current_user.is_authenticated and current_user.is_admin):
            abort(404)


def init_app(app: Flask) -> None:
    app.session_interface = CookieSessions()
    login_manager.init_app(app)
    login_manager.user_loader(_load_user)
    login_manager.unauthorized_handler(unauthorized)
