"""`/account`: profile, avatar, and the person's recent ledger entries with running balance."""

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, send_from_directory, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ledger.blueprints.account.forms import AvatarForm, ProfileForm
from ledger.db import get_session
from ledger.extensions import limiter
from ledger.services.errors import InvalidImage, InvalidRequest, UsernameTaken
from ledger.services.profile import TIMEZONES, recent_ledger, save_avatar, update_profile, validate_profile
from ledger.web import request_origin, settings

bp = Blueprint("account", __name__)


def uploads() -> Path:
    return Path(current_app.instance_path) / "uploads" / "avatars"


def _with_zones(form: ProfileForm) -> ProfileForm:
    default = settings().DEFAULT_TIMEZONE
    form.timezone.choices = [("", _("Site default (%(zone)s)", zone=default))] + [(z, z) for z in TIMEZONES]
    return form


def _page(profile: ProfileForm | None = None, avatar: AvatarForm | None = None, status: int = 200) -> Any:
    if profile is None:
        profile = ProfileForm(
            data={
                "username": current_user.username,
                "full_name": current_user.full_name,
                "website": current_user.website,
                "timezone": current_user.timezone or "",
            }
        )
    _with_zones(profile)
    return render_template(
        "account/account.html",
        profile=profile,
        avatar_form=avatar or AvatarForm(),
        entries=recent_ledger(get_session(), current_user.id),
    ), status


@bp.get("/account")
@login_required
def account() -> Any:
    return _page()


@bp.post("/account")
@login_required
def save_profile() -> Any:
    form = ProfileForm()
    if form.validate_on_submit():
        try:
            change = validate_profile(
                form.username.data or "", form.full_name.data or "", form.website.data or "", form.timezone.data or ""
            )
            update_profile(get_session(), current_user, change, origin=request_origin())
        except UsernameTaken:
            form.username.errors.append(_("This username is taken."))
        except InvalidRequest as exc:
            getattr(form, exc.extra.get("field", "username")).errors.append(exc.message)
        else:
            flash(_("Your profile is saved."), "success")
            return redirect(url_for("account.account"))
    return _page(profile=form, status=422)


@bp.post("/account/avatar")
@login_required
@limiter.limit("20/hour", key_func=lambda: f"avatar:{current_user.id}")  # decoding images costs CPU
def upload_avatar() -> Any:
    form = AvatarForm()
    if form.validate_on_submit():
        try:
            save_avatar(
                get_session(),
                current_user,
                form.avatar.data.read(AVATAR_READ_LIMIT),
                uploads=uploads(),
                origin=request_origin(),
            )
        except InvalidImage:
            form.avatar.errors.append(_("Choose a PNG, JPEG or WebP image of at most 2 MB."))
        else:
            flash(_("Your avatar is updated."), "success")
            return redirect(url_for("account.account"))
    return _page(avatar=form, status=422)


AVATAR_READ_LIMIT = 2 * 1024 * 1024 + 1  # one byte more than allowed, to tell "too big"


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
