"""`/admin/codes`: batches of redemption codes (SPEC 14): made (confirmed with their total), listed,
downloaded as CSV, disabled; one code looked up and disabled."""

from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from ledger.blueprints.backoffice.blueprint import bp
from ledger.blueprints.backoffice.confirm import confirm_then
from ledger.blueprints.backoffice.forms import ActionForm, CodeBatchForm
from ledger.blueprints.backoffice.people import acting
from ledger.db import get_session
from ledger.errors import LedgerError
from ledger.money import format_amount
from ledger.services.context import reason_of
from ledger.services.growth import code_batches
from ledger.services.growth.codes import CodeView, find_code
from ledger.validation import whole_number
from ledger.web.context import now, site_timezone


@bp.get("/codes")
def codes() -> Any:
    page = whole_number(request.args.get("page") or "1", "page", minimum=1, maximum=100_000)
    rows, total = code_batches.list_batches(get_session(), page=page)
    typed = request.args.get("code", "")
    found, missing = _look_up(typed)
    return render_template(
        "admin/codes.html",
        rows=rows,
        total=total,
        page=page,
        size=code_batches.PAGE,
        form=CodeBatchForm(formdata=None),
        action_form=ActionForm(formdata=None),
        typed=typed,
        found=found,
        missing=missing,
        zone=site_timezone(),
    )


def _look_up(typed: str) -> tuple[CodeView | None, str | None]:
    """The code typed in the look-up box, or why there is none."""
    if not typed.strip():
        return None, None
    try:
        return find_code(get_session(), typed, now=now()), None
    except LedgerError as refused:
        return None, refused.translated()


@bp.post("/codes")
def create_code_batch() -> Any:
    form = CodeBatchForm()
    fields = {
        "count": form.count.data,
        "amount": form.amount.data,
        "expires": form.expires.data,
        "note": form.note.data,
        "credit_days": form.credit_days.data,
    }

    def preview() -> list[str]:
        reason_of(form.reason.data)
        plan = code_batches.preview_create_batch(acting(), **fields, tz=site_timezone())
        lines = [
            ngettext(
                "%(num)d code of ¥%(amount)s, total ¥%(total)s",
                "%(num)d codes of ¥%(amount)s, total ¥%(total)s",
                plan.count,
                amount=format_amount(plan.amount),
                total=format_amount(plan.total),
            ),
            _("Redeemable until the end of %(day)s (%(zone)s).", day=plan.expires_on, zone=site_timezone().key)
            if plan.expires_on
            else _("The codes never expire."),
        ]
        if plan.credit_days:
            lines.append(_("Each code's credit expires %(days)d days after its redemption.", days=plan.credit_days))
        return [*lines, _("Note: %(note)s", note=plan.note)] if plan.note else lines

    def act() -> Any:
        batch, made = code_batches.create_batch(
            get_session(), acting(), **fields, reason=form.reason.data, tz=site_timezone()
        )
        flash(ngettext("%(num)d code made.", "%(num)d codes made.", len(made)), "success")
        return redirect(url_for("admin.code_batch", batch_id=batch.id))

    return confirm_then(form, preview, act, back=url_for("admin.codes"))


@bp.get("/codes/batches/<batch_id>")
def code_batch(batch_id: str) -> Any:
    session = get_session()
    figures = code_batches.batch_figures(session, batch_id)
    return render_template(
        "admin/code_batch.html",
        b=figures,
        creator=code_batches.creator_of(session, figures.batch),
        last_day=figures.last_day(site_timezone()),
        action_form=ActionForm(formdata=None),
        zone=site_timezone(),
    )


@bp.get("/codes/batches/<batch_id>/csv")
def code_batch_csv(batch_id: str) -> Any:
    name, body = code_batches.batch_csv(get_session(), acting(), batch_id, tz=site_timezone())
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    return Response(body, mimetype="text/csv", headers=headers)


@bp.post("/codes/batches/<batch_id>/disable")
def disable_code_batch(batch_id: str) -> Any:
    form, session, back = ActionForm(), get_session(), url_for("admin.code_batch", batch_id=batch_id)

    def preview() -> list[str]:
        reason_of(form.reason.data)
        figures = code_batches.preview_disable_batch(session, acting(), batch_id)
        left = figures.batch.count - figures.redeemed
        return [
            ngettext(
                "%(num)d code not yet redeemed can no longer be redeemed.",
                "%(num)d codes not yet redeemed can no longer be redeemed.",
                left,
            ),
            _("Codes already redeemed stay redeemed; their money stays with the people who redeemed them."),
        ]

    def act() -> Any:
        count = code_batches.disable_batch(session, acting(), batch_id, reason=form.reason.data)
        flash(
            ngettext(
                "The batch is disabled: %(num)d code stopped.", "The batch is disabled: %(num)d codes stopped.", count
            ),
            "success",
        )
        return redirect(back)

    return confirm_then(form, preview, act, back=back)


@bp.post("/codes/<code>/disable")
def disable_code(code: str) -> Any:
    form, session, back = ActionForm(), get_session(), url_for("admin.codes", code=code)

    def preview() -> list[str]:
        reason_of(form.reason.data)
        view = code_batches.preview_disable_code(session, acting(), code)
        return [
            _(
                "Code %(code)s (¥%(amount)s) can no longer be redeemed.",
                code=view.display,
                amount=format_amount(view.code.amount),
            )
        ]

    def act() -> Any:
        view = code_batches.disable_code(session, acting(), code, reason=form.reason.data)
        flash(_("The code is disabled."), "success")
        return redirect(url_for("admin.codes", code=view.display))

    return confirm_then(form, preview, act, back=back)
