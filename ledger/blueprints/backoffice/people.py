"""`/admin/users`: find anyone; a person's whole picture (their credit lots and what drew them included);
adjust, sign out everywhere, disable/enable."""

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_login import current_user

from ledger.blueprints.backoffice.blueprint import bp
from ledger.blueprints.backoffice.confirm import balance_change, confirm_then
from ledger.blueprints.backoffice.forms import ActionForm, AdjustForm, LimitForm
from ledger.db import get_session
from ledger.models import LimitSetter
from ledger.money import format_amount
from ledger.services.backoffice import people as backoffice
from ledger.services.books import limits, lots
from ledger.services.context import Context, reason_of
from ledger.validation import whole_number
from ledger.web.context import now, request_context, settings, user_timezone

DRAWS_SHOWN = 10  # a lot's newest draws on the person's page


def acting() -> Context:
    return request_context().as_admin(current_user.id)


@bp.get("/users")
def people() -> Any:
    query = request.args.get("q", "")
    page = whole_number(request.args.get("page") or "1", "page", minimum=1, maximum=100_000)
    found, total = backoffice.search_people(get_session(), query, page=page)
    return render_template("admin/people.html", people=found, total=total, q=query, page=page, size=backoffice.PAGE)


@bp.get("/users/<user_id>")
def person(user_id: str) -> Any:
    session, at = get_session(), now()
    picture = backoffice.picture(session, user_id, now=at)
    credit_lots = lots.lots_page(session, picture.person.id, request.args.get("lots_before"))
    return render_template(
        "admin/person.html",
        p=picture,
        # not `kinds`: that is the header's, the admin's own money (base.html)
        person_kinds=lots.kinds_of(session, picture.person.id, at),
        lots=credit_lots,
        draws=lots.draws_of_lots(session, [lot.id for lot in credit_lots.items], limit=DRAWS_SHOWN),
        draws_shown=DRAWS_SHOWN,
        as_of=at,
        adjust=AdjustForm(),
        limits=limits.limits_of(session, picture.person.id, at, settings().timezone),
        limit_form=_limit_form(session, picture.person.id, at),
    )


def _limit_form(session: Any, person_id: Any, at: Any) -> LimitForm:
    """The form with the admin's limits as they are (the person's own are shown, not edited here)."""
    admins = {
        u.period.value: f"{u.amount:.2f}"
        for u in limits.limits_of(session, person_id, at, settings().timezone)
        if u.set_by == LimitSetter.ADMIN
    }
    return LimitForm(data=admins)


@bp.post("/users/<user_id>/limits")
def set_limits(user_id: str) -> Any:
    """The admin's spending limits of the person (SPEC 22): a reason, confirmed, audited; the lower
    of the person's and the admin's applies."""
    form, session = LimitForm(), get_session()
    person = backoffice.person(session, user_id)  # NotFound: the error page

    def preview() -> list[str]:
        reason_of(form.reason.data)
        for name, raw in (("day", form.day.data), ("month", form.month.data)):
            if raw and raw.strip():
                limits.limit_amount(raw, name)
        typed = (("day", form.day.data), ("month", form.month.data))
        shown = {name: (raw.strip() if raw and raw.strip() else "-") for name, raw in typed}
        line = _("%(who)s: daily limit %(day)s, monthly limit %(month)s (set by an admin).", who=person.email, **shown)
        return [line]

    def act() -> Any:
        limits.set_limits(
            session,
            acting(),
            user_id=person.id,
            day=form.day.data,
            month=form.month.data,
            set_by=LimitSetter.ADMIN,
            reason=reason_of(form.reason.data),
        )
        flash(_("The spending limits are saved."), "success")
        return redirect(url_for("admin.person", user_id=user_id, _anchor="limits"))

    return confirm_then(form, preview, act, back=url_for("admin.person", user_id=user_id))


@bp.post("/users/<user_id>/adjust")
def adjust(user_id: str) -> Any:
    form, session = AdjustForm(), get_session()
    expiry = {"expires_at": form.expires_at.data, "tz": user_timezone()}  # a time without an offset is the admin's

    def preview() -> list[str]:
        reason_of(form.reason.data)
        plan = backoffice.preview_adjust(session, acting(), user_id, form.amount.data, debit=form.debit.data, **expiry)
        if plan.amount < 0:
            what = _("Take ¥%(amount)s from %(who)s.", amount=format_amount(-plan.amount), who=plan.person.email)
        else:
            what = _("Credit ¥%(amount)s to %(who)s.", amount=format_amount(plan.amount), who=plan.person.email)
        lines = [what, balance_change(plan.balance, plan.balance_after)]
        if plan.expires_at is not None:
            lines.append(_("It expires at %(when)s.", when=format_datetime(plan.expires_at, "yyyy-MM-dd HH:mm")))
        return lines

    def act() -> Any:
        backoffice.adjust(
            session, acting(), user_id, form.amount.data, debit=form.debit.data, reason=form.reason.data, **expiry
        )
        flash(_("The balance is adjusted."), "success")
        return redirect(url_for("admin.person", user_id=user_id))

    return confirm_then(form, preview, act, back=url_for("admin.person", user_id=user_id))


@bp.post("/users/<user_id>/sign-out")
def sign_out(user_id: str) -> Any:
    form, session = ActionForm(), get_session()

    def preview() -> list[str]:
        reason_of(form.reason.data)
        someone, live = backoffice.preview_sign_out_everywhere(session, acting(), user_id)
        return [_("%(who)s: %(n)d session(s) end.", who=someone.email, n=live)]

    def act() -> Any:
        count = backoffice.sign_out_everywhere(session, acting(), user_id, reason=form.reason.data)
        flash(_("%(n)d session(s) ended.", n=count), "success")
        return redirect(url_for("admin.person", user_id=user_id))

    return confirm_then(form, preview, act, back=url_for("admin.person", user_id=user_id))


@bp.post("/users/<user_id>/disable")
def disable(user_id: str) -> Any:
    return _set_disabled(user_id, disabled=True)


@bp.post("/users/<user_id>/enable")
def enable(user_id: str) -> Any:
    return _set_disabled(user_id, disabled=False)


def _set_disabled(user_id: str, *, disabled: bool) -> Any:
    form, session = ActionForm(), get_session()

    def preview() -> list[str]:
        reason_of(form.reason.data)
        someone = backoffice.preview_set_disabled(session, acting(), user_id, disabled=disabled)
        if disabled:
            return [
                _("%(who)s cannot sign in or be charged; their sessions end; their money stays.", who=someone.email)
            ]
        return [_("%(who)s can sign in and be charged again.", who=someone.email)]

    def act() -> Any:
        backoffice.set_disabled(session, acting(), user_id, disabled=disabled, reason=form.reason.data)
        flash(_("The account is disabled.") if disabled else _("The account is enabled."), "success")
        return redirect(url_for("admin.person", user_id=user_id))

    return confirm_then(form, preview, act, back=url_for("admin.person", user_id=user_id))
