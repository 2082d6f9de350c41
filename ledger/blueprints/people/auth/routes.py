"""`/login`, `/register`, `/logout`, and `/portal/<token>` (a link the SaaS's backend asked for, SPEC 25)."""

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, logout_user

from ledger.blueprints.people.auth.forms import LoginForm, RegisterForm
from ledger.db import get_session
from ledger.errors import PortalLinkUnusable
from ledger.extensions import limiter
from ledger.models import Actor
from ledger.services.people.portal import use_portal_link
from ledger.services.people.sign_in import authenticate, end_session, register_user
from ledger.web.auth import current_session_id, remember_login, sign_in
from ledger.web.context import request_context, settings
from ledger.web.parsing import safe_next_url, submit

bp = Blueprint("auth", __name__)


def _login_account_key() -> str:
    """Rate-limit key of a login attempt's account: guessing one person's password from many IPs is limited too."""
    return "login-account:" + request.form.get("email", "").strip().lower()[:254]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: settings().RATELIMIT_LOGIN, methods=["POST"])
@limiter.limit(lambda: settings().RATELIMIT_LOGIN, methods=["POST"], key_func=_login_account_key)
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("site.dashboard"))
    form = LoginForm()
    user = submit(
        form,
        lambda: authenticate(get_session(), email=form.email.data, password=form.password.data, ctx=request_context()),
    )
    if user is None:
        return render_template("auth/login.html", form=form), form.status
    sign_in(user)
    return redirect(safe_next_url(request.args.get("next"), url_for("site.dashboard")))


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(lambda: settings().RATELIMIT_REGISTER, methods=["POST"])
def register() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("site.dashboard"))
    form = RegisterForm()
    if request.method == "GET" and request.args.get("invite"):
        form.invite.data = request.args["invite"][:16]  # the invite link: /register?invite=CODE
    user = submit(
        form,
        lambda: register_user(
            get_session(),
            email=form.email.data,
            password=form.password.data,
            ctx=request_context(),
            invite_code=form.invite.data,
        ),
    )
    if user is None:
        return render_template("auth/register.html", form=form), form.status
    sign_in(user)
    flash(_("Welcome! Your account is ready."), "success")
    return redirect(url_for("site.dashboard"))


@bp.post("/logout")
@login_required
def logout() -> Any:
    end_session(get_session(), user_id=current_user.id, session_id=current_session_id(), ctx=request_context())
    logout_user()
    session.clear()
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.get("/portal/<path:token>", strict_slashes=False)  # a link mangled in transit: the sign-in page too
def portal(token: str) -> Any:
    """Sign in through a portal link and land on its page; a used, expired or unknown link leads to
    the sign-in page with a message, never to an error page. A HEAD (a link checker, a chat app's
    preview) uses nothing. Whoever was signed in in this browser is signed out first."""
    if request.method == "HEAD":
        return "", 200, {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    if current_user.is_authenticated:
        end_session(get_session(), user_id=current_user.id, session_id=current_session_id(), ctx=request_context())
    try:
        entry = use_portal_link(get_session(), token=token, ctx=request_context(Actor.INTERNAL))
    except PortalLinkUnusable as unusable:
        answer = redirect(url_for("auth.login"))
        flash(unusable.translated(), "warning")
    else:
        remember_login(entry.user, entry.login, return_url=entry.return_url)
        answer = redirect(entry.next_path)
    answer.headers["Referrer-Policy"] = "no-referrer"  # the token never leaves in a Referer
    answer.headers["Cache-Control"] = "no-store"
    return answer
