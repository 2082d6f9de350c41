from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from ledger.blueprints.auth.forms import LoginForm, RegisterForm
from ledger.db import get_session
from ledger.extensions import limiter
from ledger.models import User
from ledger.services.accounts import authenticate, end_session, register_user, start_session
from ledger.services.errors import EmailTaken, InvalidCredentials, InvalidRequest, InviteCodeNotFound
from ledger.web import SESSION_ID_KEY, request_origin, safe_next_url, settings

bp = Blueprint("auth", __name__)


def _sign_in(user: User) -> None:
    """A fresh login session: a new user_sessions row and a cleared cookie (no session fixation)."""
    login = start_session(get_session(), user, origin=request_origin())
    session.clear()
    session.permanent = True
    session[SESSION_ID_KEY] = str(login.id)
    login_user(user)


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
    if form.validate_on_submit():
        try:
            user = authenticate(
                get_session(), email=form.email.data, password=form.password.data, origin=request_origin()
            )
        except InvalidCredentials:
            form.password.errors.append(_("Email or password is incorrect."))
        else:
            _sign_in(user)
            return redirect(safe_next_url(request.args.get("next"), url_for("site.dashboard")))
    return render_template("auth/login.html", form=form), 200 if not form.errors else 422


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(lambda: settings().RATELIMIT_REGISTER, methods=["POST"])
def register() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("site.dashboard"))
    form = RegisterForm()
    if request.method == "GET" and request.args.get("invite"):
        form.invite.data = request.args["invite"][:16]  # the invite link: /register?invite=CODE
    if form.validate_on_submit():
        try:
            user = register_user(
                get_session(),
                email=form.email.data,
                password=form.password.data,
                origin=request_origin(),
                invite_code=form.invite.data,
            )
        except InviteCodeNotFound:
            form.invite.errors.append(_("No one has this invite code. Check it, or leave the field empty."))
        except EmailTaken:
            form.email.errors.append(_("An account with this email already exists. Sign in instead?"))
        except InvalidRequest as exc:
            getattr(form, exc.extra.get("field", "email")).errors.append(exc.message)
        else:
            _sign_in(user)
            flash(_("Welcome! Your account is ready."), "success")
            return redirect(url_for("site.dashboard"))
    return render_template("auth/register.html", form=form), 200 if not form.errors else 422


@bp.post("/logout")
@login_required
def logout() -> Any:
    end_session(get_session(), user_id=current_user.id, session_id=session.get(SESSION_ID_KEY), origin=request_origin())
    logout_user()
    session.clear()
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))
