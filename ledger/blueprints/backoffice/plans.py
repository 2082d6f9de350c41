"""`/admin/plans`: plans (套餐, SPEC 21) made (confirmed with what they sell), listed with how many
people hold each, edited (from each subscription's next period) and retired."""

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from ledger.blueprints.backoffice.blueprint import bp
from ledger.blueprints.backoffice.confirm import confirm_then
from ledger.blueprints.backoffice.forms import ActionForm, PlanEditForm, PlanForm
from ledger.blueprints.backoffice.people import acting
from ledger.db import get_session
from ledger.i18n import N_
from ledger.money import format_amount, to_api
from ledger.services.context import reason_of
from ledger.services.growth import plans

FIELD_LABELS = {
    "name_zh": N_("Name in Chinese"),
    "name_en": N_("Name in English"),
    "price": N_("Price a period"),
    "allowance": N_("Allowance a period"),
}


def _sells(draft: plans.PlanDraft) -> str:
    """What a plan sells, as a confirmation line."""
    figures = {"price": format_amount(draft.price), "allowance": format_amount(draft.allowance)}
    if draft.period == "week":
        return _("¥%(price)s a week for ¥%(allowance)s of allowance", **figures)
    return _("¥%(price)s a month for ¥%(allowance)s of allowance", **figures)


@bp.get("/plans", endpoint="plans")
def plans_list() -> Any:
    return render_template(
        "admin/plans.html", rows=plans.list_plans(get_session()), form=PlanForm(formdata=None, period="month")
    )


@bp.post("/plans")
def create_plan() -> Any:
    form, session = PlanForm(), get_session()
    fields = {
        "code": form.code.data,
        "name_zh": form.name_zh.data,
        "name_en": form.name_en.data,
        "price": form.price.data,
        "period": form.period.data,
        "allowance": form.allowance.data,
    }

    def preview() -> list[str]:
        reason_of(form.reason.data)
        draft = plans.preview_create_plan(session, **fields)
        return [
            _("Plan %(code)s: %(zh)s / %(en)s", code=draft.code, zh=draft.name_zh, en=draft.name_en),
            _sells(draft),
            _("On sale at once on /plans and through the API."),
        ]

    def act() -> Any:
        plan = plans.create_plan(session, acting(), reason=form.reason.data, **fields)
        flash(_("Plan %(code)s is on sale.", code=plan.code), "success")
        return redirect(url_for("admin.plan", code=plan.code))

    return confirm_then(form, preview, act, back=url_for("admin.plans"))


@bp.get("/plans/<code>")
def plan(code: str) -> Any:
    session = get_session()
    found = plans.plan_by_code(session, code)
    values = {"name_zh": found.name_zh, "name_en": found.name_en}
    values |= {"price": to_api(found.price), "allowance": to_api(found.allowance)}
    return render_template(
        "admin/plan.html",
        plan=found,
        holders=plans.holders(session, found.id),
        edit=PlanEditForm(formdata=None, **values),
        action_form=ActionForm(formdata=None),
    )


@bp.post("/plans/<code>/edit")
def edit_plan(code: str) -> Any:
    form, session, back = PlanEditForm(), get_session(), url_for("admin.plan", code=code)
    fields = {"name_zh": form.name_zh.data, "name_en": form.name_en.data}
    fields |= {"price": form.price.data, "allowance": form.allowance.data}

    def preview() -> list[str]:
        reason_of(form.reason.data)
        change = plans.preview_edit_plan(session, code, **fields)
        lines = [
            _("%(field)s: %(before)s → %(after)s", field=_(FIELD_LABELS[name]), before=_shown(b), after=_shown(a))
            for name, (b, a) in change.changes.items()
        ]
        return [
            *lines,
            _("Periods already sold keep their price and allowance; the change applies from each next one."),
        ]

    def act() -> Any:
        plans.edit_plan(session, acting(), code, reason=form.reason.data, **fields)
        flash(_("The plan is changed: from each subscription's next period."), "success")
        return redirect(back)

    return confirm_then(form, preview, act, back=back)


def _shown(value: object) -> str:
    return f"¥{format_amount(value)}" if not isinstance(value, str) else value  # type: ignore[arg-type]


@bp.post("/plans/<code>/retire")
def retire_plan(code: str) -> Any:
    form, session, back = ActionForm(), get_session(), url_for("admin.plan", code=code)

    def preview() -> list[str]:
        reason_of(form.reason.data)
        found, count = plans.preview_retire_plan(session, code)
        return [
            _("Plan %(code)s sells no new subscription and renews none.", code=found.code),
            ngettext(
                "%(num)d subscription runs to the end of its period, then ends.",
                "%(num)d subscriptions run to the end of their period, then end.",
                count,
            ),
        ]

    def act() -> Any:
        plans.retire_plan(session, acting(), code, reason=form.reason.data)
        flash(_("The plan is retired."), "success")
        return redirect(back)

    return confirm_then(form, preview, act, back=back)
