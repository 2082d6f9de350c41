"""`/security`: login sessions (sign out one or all others), password change, recent audit events."""

from typing import Any

from flask import Blueprint, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ledger.blueprints.security.forms import PasswordForm
from ledger.db import get_session
from ledger.extensions import limiter
from ledger.services.errors import InvalidCredentials, InvalidRequest
from ledger.services.profile import (
    active_sessions,
    change_password,
    describe_device,
    recent_audit,
    revoke_other_sessions,
    revoke_session,
)
from ledger.web import SESSION_ID_KEY, request_origin, settings

bp = Blueprint("security", __name__)


def _page(form: PasswordForm | None = None, status: int = 200) -> Any:
    db = get_session()
    return render_template(
        "security/security.html",
        sessions=active_sessions(db, current_user.id),
        this_session=session.get(SESSION_ID_KEY),
        events=recent_audit(db, current_user.id),
        form=form or PasswordForm(),
        describe_device=describe_device,
    ), status


@bp.get("/security")
@login_required
def security() -> Any:
    return _page()


@bp.post("/security/sessions/<session_id>/revoke")
@login_required
def revoke(session_id: str) -> Any:
    revoke_session(get_session(), user_id=current_user.id, session_id=session_id, origin=request_origin())
    flash(_("That session is signed out."), "success")
    return redirect(url_for("security.security"))


@bp.post("/security/sessions/revoke-others")
@login_required
def revoke_others() -> Any:
    count = revoke_other_sessions(
        get_session(), user_id=current_user.id, keep=session.get(SESSION_ID_KEY), origin=request_origin()
    )
    flash(_("Signed out %(n)d other session(s).", n=count), "success")
    return redirect(url_for("security.security"))


@bp.post("/security/password")
@login_required
@limiter.limit(lambda: settings().RATELIMIT_LOGIN, key_func=lambda: f"password:{current_user.id}")
def password() -> Any:
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            count = change_password(
                get_session(),
                current_user,
                current=form.current.data,
                new=form.new.data,
                keep=session.get(SESSION_ID_KEY),
                origin=request_origin(),
            )
        except InvalidCredentials:
            form.current.errors.append(_("The current password is not right."))
        except InvalidRequest as exc:
            form.new.errors.append(exc.message)
        else:
            flash(_("Your password is changed; %(n)d other session(s) were signed out.", n=count), "success")
            return redirect(url_for("security.security"))
    return _page(form, status=422)
