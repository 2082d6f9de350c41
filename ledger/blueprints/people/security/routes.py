"""`/security`: login sessions (sign out one or all others), password change, audit events (paged)."""

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required

from ledger.blueprints.people.security.forms import PasswordForm, SessionsForm, password_form
from ledger.db import get_session
from ledger.extensions import limiter
from ledger.services.audit import audit_page
from ledger.services.people.sign_in import active_sessions, change_password, revoke_other_sessions, revoke_session
from ledger.web.auth import current_session_id
from ledger.web.context import request_context, settings
from ledger.web.parsing import submit

bp = Blueprint("security", __name__)


def _page(form: PasswordForm | None = None, sessions_form: SessionsForm | None = None) -> Any:
    db = get_session()
    form = form or password_form(current_user.password_hash is not None)
    sessions_form = sessions_form or SessionsForm()
    return render_template(
        "security/security.html",
        sessions=active_sessions(db, current_user.id),
        this_session=current_session_id(),
        events=audit_page(db, current_user.id, request.args.get("before")),
        form=form,
        sessions_form=sessions_form,
    ), max(form.status, sessions_form.status)


@bp.get("/security")
@login_required
def security() -> Any:
    return _page()


@bp.post("/security/sessions/<session_id>/revoke")
@login_required
def revoke(session_id: str) -> Any:
    form = SessionsForm()
    done = submit(
        form,
        lambda: revoke_session(get_session(), user_id=current_user.id, session_id=session_id, ctx=request_context()),
    )
    if done is None:
        return _page(sessions_form=form)
    flash(_("That session is signed out."), "success")
    return redirect(url_for("security.security"))


@bp.post("/security/sessions/revoke-others")
@login_required
def revoke_others() -> Any:
    form = SessionsForm()
    count = submit(
        form,
        lambda: revoke_other_sessions(
            get_session(), user_id=current_user.id, keep=current_session_id(), ctx=request_context()
        ),
    )
    if count is None:
        return _page(sessions_form=form)
    if count:
        flash(ngettext("Signed out %(num)d other session.", "Signed out %(num)d other sessions.", count), "success")
    else:
        flash(_("You were signed in nowhere else: nothing to sign out."), "info")
    return redirect(url_for("security.security"))


@bp.post("/security/password")
@login_required
@limiter.limit(lambda: settings().RATELIMIT_LOGIN, key_func=lambda: f"password:{current_user.id}")
def password() -> Any:
    first = current_user.password_hash is None  # a person the SaaS's backend made sets their first one
    form = password_form(not first)
    count = submit(
        form,
        lambda: change_password(
            get_session(),
            current_user,
            current=None if first else form.current.data,
            new=form.new.data,
            keep=current_session_id(),
            ctx=request_context(),
        ),
    )
    if count is None:
        return _page(form)
    if first:
        flash(_("Your password is set: you can also sign in with your email and this password."), "success")
        return redirect(url_for("account.account"))
    flash(
        ngettext(
            "Your password is changed; %(num)d other session was signed out.",
            "Your password is changed; %(num)d other sessions were signed out.",
            count,
        )
        if count
        else _("Your password is changed."),
        "success",
    )
    return redirect(url_for("security.security"))
