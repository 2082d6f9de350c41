"""`/invites`: one's own code and link (copy, QR), binding a code, invitees and rewards earned."""

from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from wtforms import StringField

from ledger.db import get_session
from ledger.services.growth.invites import RewardPolicy, bind_invite, display_name, invite_overview
from ledger.web.context import request_context, settings
from ledger.web.parsing import TextForm, submit
from ledger.web.templating import invite_link, qr_svg

bp = Blueprint("invites", __name__)


class BindForm(TextForm):
    code = StringField()  # checked by the service: it knows what a code is


def _page(form: BindForm) -> Any:
    overview = invite_overview(get_session(), current_user)
    link = invite_link(overview.code)
    return render_template(
        "invites/invites.html",
        overview=overview,
        link=link,
        link_qr=qr_svg(link),
        form=form,
        rewards=RewardPolicy.of(settings()),
    ), form.status


@bp.get("/invites")
@login_required
def invites() -> Any:
    return _page(BindForm())


@bp.post("/invites")
@login_required
def bind() -> Any:
    form = BindForm()
    bound = submit(
        form, lambda: bind_invite(get_session(), invitee=current_user, code=form.code.data, ctx=request_context())
    )
    if bound is None:
        return _page(form)
    _relation, inviter = bound
    flash(_("You were invited by %(name)s.", name=display_name(inviter)), "success")
    return redirect(url_for("invites.invites"))
