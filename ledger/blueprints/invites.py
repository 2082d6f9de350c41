"""`/invites`: one's own code and link (copy, QR), binding a code, invitees and rewards earned."""

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.services.errors import AlreadyInvited, InviteCodeNotFound, InviteCycle, SelfInvite
from ledger.services.invites import Rewards, bind_invite, display_name, invite_overview
from ledger.web import invite_link, qr_svg, request_origin, settings

bp = Blueprint("invites", __name__)

REFUSALS = {
    InviteCodeNotFound: lambda: _("No one has this invite code. Check it and try again."),
    SelfInvite: lambda: _("This is your own invite code: share it with friends instead."),
    InviteCycle: lambda: _("This code belongs to someone you invited, so it cannot be your inviter."),
    AlreadyInvited: lambda: _("You already have an inviter."),
}


def _page(status: int = 200, error: str | None = None, code: str = "") -> Any:
    overview = invite_overview(get_session(), current_user)
    link = invite_link(overview.code)
    return render_template(
        "invites/invites.html",
        overview=overview,
        link=link,
        link_qr=qr_svg(link),
        error=error,
        code=code,
        rewards=Rewards.from_settings(settings()),
        rewards_on_first_topup=settings().INVITE_REWARD_ON_FIRST_TOPUP,
    ), status


@bp.get("/invites")
@login_required
def invites() -> Any:
    return _page()


@bp.post("/invites")
@login_required
def bind() -> Any:
    code = request.form.get("code", "").strip()
    try:
        _relation, inviter = bind_invite(get_session(), invitee=current_user, code=code, origin=request_origin())
    except (InviteCodeNotFound, SelfInvite, InviteCycle, AlreadyInvited) as exc:
        return _page(exc.status, REFUSALS[type(exc)](), code)
    flash(_("You were invited by %(name)s.", name=display_name(inviter)), "success")
    return redirect(url_for("invites.invites"))
