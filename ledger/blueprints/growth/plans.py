"""`/plans`: the plans on sale (套餐: a price a week or a month for an allowance), the person's own
subscriptions (what is left of the current allowance and until when), subscribe, cancel auto-renew;
and a banner that offers a top-up after a subscription lapsed for lack of money."""

from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from wtforms import HiddenField

from ledger.db import get_session
from ledger.models import Plan
from ledger.money import format_amount
from ledger.services.books.accounts import funds
from ledger.services.growth import plans
from ledger.web.context import now, request_context
from ledger.web.parsing import TextForm, flash_errors, submit

bp = Blueprint("plans", __name__)


class SubscribeForm(TextForm):
    plan = HiddenField()  # the plan's code; the service knows which codes are sold


class CancelForm(TextForm):
    pass


@bp.app_template_filter("plan_name")
def plan_name(plan: Plan) -> str:
    """A plan's name in the page's language."""
    return plan.name_zh if str(get_locale()) == "zh" else plan.name_en


@bp.get("/plans")
@login_required
def plans_page() -> Any:
    session, at = get_session(), now()
    held = plans.holdings(session, current_user.id, at)
    return render_template(
        "plans/plans.html",
        on_sale=plans.list_plans(session, for_sale=True),
        held=held,
        held_plans={h.plan.id for h in held},
        lapsed=plans.lapsed_for_money(session, current_user.id, at),
        available=funds(session, current_user.id, at).available,
        as_of=at,
    )


@bp.post("/plans/subscribe")
@login_required
def subscribe() -> Any:
    form = SubscribeForm()
    done = submit(form, lambda: plans.subscribe(get_session(), request_context(), current_user.id, form.plan.data))
    if done is None:
        flash_errors(form, "insufficient" if form.error and form.error.code == "insufficient_balance" else "danger")
        return redirect(url_for("plans.plans_page"))
    flash(
        _(
            "You subscribed to %(plan)s: ¥%(price)s was taken from your balance, and ¥%(allowance)s of plan allowance "
            "is yours until %(end)s.",
            plan=plan_name(done.plan),
            price=format_amount(done.plan.price),
            allowance=format_amount(done.plan.allowance),
            end=format_datetime(done.subscription.current_period_end, "yyyy-MM-dd HH:mm"),
        ),
        "success",
    )
    return redirect(url_for("plans.plans_page"))


@bp.post("/plans/subscriptions/<subscription_id>/cancel")
@login_required
def cancel(subscription_id: str) -> Any:
    form = CancelForm()
    done = submit(
        form, lambda: plans.cancel(get_session(), request_context(), subscription_id, user_id=current_user.id)
    )
    if done is None:
        flash_errors(form)
        return redirect(url_for("plans.plans_page"))
    flash(
        _(
            "Auto-renew is off: %(plan)s ends with its current period; its allowance stays until then.",
            plan=plan_name(done.plan),
        ),
        "success",
    )
    return redirect(url_for("plans.plans_page"))
