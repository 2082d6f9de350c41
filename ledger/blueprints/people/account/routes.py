"""`/account`: profile, avatar, the balance by kind of money, the person's credit lots and ledger entries
with running balance (each paged)."""

from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ledger.blueprints.people.account.forms import AlertForm, AvatarForm, LimitsForm, ProfileForm
from ledger.blueprints.people.security.forms import password_form
from ledger.db import get_session
from ledger.extensions import limiter
from ledger.models import LimitSetter
from ledger.services.books.accounts import ledger_page
from ledger.services.books.holds import money_on_hold
from ledger.services.books.limits import limits_of, set_limits
from ledger.services.books.lots import kinds_of, lots_page
from ledger.services.books.low_balance import set_own_threshold
from ledger.services.people.profile import AVATAR_MAX_BYTES, TIMEZONES, save_avatar, update_profile
from ledger.web.context import now, request_context, settings
from ledger.web.language import zone_choices, zone_label
from ledger.web.parsing import submit

bp = Blueprint("account", __name__)
AVATAR_READ_LIMIT = AVATAR_MAX_BYTES + 1  # one byte more than allowed, to tell "too big"


def uploads() -> Path:
    return Path(current_app.instance_path) / "uploads" / "avatars"


def _page(
    profile: ProfileForm | None = None,
    avatar: AvatarForm | None = None,
    alert: AlertForm | None = None,
    limits_form: LimitsForm | None = None,
) -> Any:
    site = settings().LOW_BALANCE_THRESHOLD
    if alert is None:
        own = current_user.low_balance_threshold
        alert = AlertForm(data={"low_balance_threshold": "" if own is None else f"{own:.2f}"})
    alert.low_balance_threshold.description = _("Empty: the site's ¥%(site)s. 0: never warn.", site=f"{site:.2f}")
    if profile is None:
        profile = ProfileForm(
            data={
                "username": current_user.username,
                "full_name": current_user.full_name,
                "website": current_user.website,
                "timezone": current_user.timezone or "",
            }
        )
    default = settings().DEFAULT_TIMEZONE
    profile.timezone.choices = [("", _("Site default (%(zone)s)", zone=zone_label(default))), *zone_choices(TIMEZONES)]
    avatar = avatar or AvatarForm()
    session, at = get_session(), now()
    uses = limits_of(session, current_user.id, at, settings().timezone)
    if limits_form is None:
        own = {u.period.value: f"{u.amount:.2f}" for u in uses if u.set_by == LimitSetter.PERSON}
        limits_form = LimitsForm(data=own)
    return render_template(
        "account/account.html",
        profile=profile,
        avatar_form=avatar,
        alert_form=alert,
        entries=ledger_page(session, current_user.id, request.args.get("before")),
        lots=lots_page(session, current_user.id, request.args.get("lots_before")),
        on_hold=money_on_hold(session, current_user.id, now=at),
        kinds=kinds_of(session, current_user.id, at),
        as_of=at,
        limits=uses,
        limits_form=limits_form,
        # A person the SaaS's backend made (SPEC 25) sets their first password here.
        password_form=password_form(has_password=False) if current_user.password_hash is None else None,
    ), max(profile.status, avatar.status, alert.status, limits_form.status)


@bp.get("/account")
@login_required
def account() -> Any:
    return _page()


@bp.post("/account")
@login_required
def save_profile() -> Any:
    form = ProfileForm()
    saved = submit(
        form,
        lambda: update_profile(
            get_session(),
            current_user,
            username=form.username.data,
            full_name=form.full_name.data,
            website=form.website.data,
            timezone=form.timezone.data,
            ctx=request_context(),
        ),
    )
    if saved is None:
        return _page(profile=form)
    flash(_("Your profile is saved."), "success")
    return redirect(url_for("account.account"))


@bp.post("/account/alert")
@login_required
def save_alert() -> Any:
    form = AlertForm()
    saved = submit(
        form,
        lambda: set_own_threshold(
            get_session(), current_user.id, form.low_balance_threshold.data, ctx=request_context()
        ),
    )
    if form.status != 200:
        return _page(alert=form)
    if saved is None:
        site = f"{settings().LOW_BALANCE_THRESHOLD:.2f}"
        flash(_("You will be warned below the site's ¥%(site)s.", site=site), "success")
    elif saved == 0:
        flash(_("You will not be warned of a low balance."), "success")
    else:
        flash(_("You will be warned below ¥%(amount)s.", amount=f"{saved:.2f}"), "success")
    return redirect(url_for("account.account"))


@bp.post("/account/limits")
@login_required
def save_limits() -> Any:
    """The person's own spending limits (SPEC 22); an admin's, if lower, still applies."""
    form = LimitsForm()
    submit(
        form,
        lambda: set_limits(
            get_session(),
            request_context(),
            user_id=current_user.id,
            day=form.day.data,
            month=form.month.data,
            set_by=LimitSetter.PERSON,
        ),
    )
    if form.status != 200:
        return _page(limits_form=form)
    flash(_("Your spending limits are saved."), "success")
    return redirect(url_for("account.account", _anchor="limits"))


@bp.post("/account/avatar")
@login_required
@limiter.limit("20/hour", key_func=lambda: f"avatar:{current_user.id}")  # decoding images costs CPU
def upload_avatar() -> Any:
    form = AvatarForm()
    saved = submit(
        form,
        lambda: save_avatar(
            get_session(),
            current_user,
            form.avatar.data.read(AVATAR_READ_LIMIT),
            uploads=uploads(),
            ctx=request_context(),
        ),
    )
    if saved is None:
        return _page(avatar=form)
    flash(_("Your avatar is updated."), "success")
    return redirect(url_for("account.account"))


@bp.get("/account/avatar")
@login_required
def avatar() -> Any:
    """The signed-in person's own avatar (the URL names no one: there is nobody else's to ask for)."""
    if not current_user.avatar:
        abort(404)
    response = send_from_directory(uploads(), current_user.avatar, mimetype="image/png", max_age=0)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Content-Disposition"] = "inline"
    response.headers["Cache-Control"] = "private, max-age=300"
    return response
