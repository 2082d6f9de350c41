"""`/admin/orders`: orders by status, dates and person; an order's notify history and refunds; check
with XorPay, mark paid by hand (补单), refund, and resolve a refund whose outcome is unknown."""

from datetime import date, datetime, time, timedelta
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ledger.blueprints.backoffice.blueprint import bp
from ledger.blueprints.backoffice.confirm import balance_change, confirm_then
from ledger.blueprints.backoffice.forms import ActionForm, MarkPaidForm, RefundForm
from ledger.blueprints.backoffice.people import acting
from ledger.db import get_session
from ledger.models import PaymentStatus, PayType
from ledger.money import format_amount
from ledger.services.backoffice import people as backoffice
from ledger.services.books import accounts
from ledger.services.context import reason_of
from ledger.services.payments import orders as topup_orders
from ledger.services.payments import refunds, settlement
from ledger.validation import day, whole_number
from ledger.web.context import gateway, now, user_timezone
from ledger.web.language import payment_status_label
from ledger.web.parsing import safe_next_url

PAGE = 25


@bp.get("/orders")
def orders() -> Any:
    args, session, tz = request.args, get_session(), user_timezone()
    since, until = _day(args.get("from"), "from"), _day(args.get("to"), "to")
    who = (args.get("person") or "").strip()
    found, total = topup_orders.find_orders(
        session,
        status=args.get("status"),
        pay_type=args.get("pay_type"),
        user_ids=[p.id for p in backoffice.search_people(session, who)[0]] if who else None,
        since=datetime.combine(since, time.min, tzinfo=tz) if since else None,
        until=datetime.combine(until + timedelta(days=1), time.min, tzinfo=tz) if until else None,
        page=whole_number(args.get("page") or "1", "page", minimum=1, maximum=100_000),
        size=PAGE,
    )
    return render_template(
        "admin/orders.html",
        orders=found,
        total=total,
        args=args,
        statuses=list(PaymentStatus),
        methods=list(PayType),
    )


@bp.get("/orders/<transaction_id>")
def order(transaction_id: str) -> Any:
    session = get_session()
    found = topup_orders.order_by_id(session, transaction_id)
    made = refunds.refunds_of(session, found.id)
    return render_template(
        "admin/order.html",
        order=found,
        history=topup_orders.notify_history(session, found),
        refunds=made,
        refunded=refunds.OrderRefunds.of(made).refunded,
        refundable=refunds.refundable_now(session, found, now()),
        action_form=ActionForm(),
        mark=MarkPaidForm(),
        refund=RefundForm(),
        owner=backoffice.person(session, found.user_id),
    )


@bp.post("/orders/<transaction_id>/check")
def check(transaction_id: str) -> Any:
    form, session, back = ActionForm(), get_session(), url_for("admin.order", transaction_id=transaction_id)

    def preview() -> list[str]:
        reason_of(form.reason.data)
        found = topup_orders.order_by_id(session, transaction_id)
        return [
            _(
                "Ask XorPay about order %(id)s (%(status)s); credit it if it was paid.",
                id=found.id,
                status=found.status.value,
            )
        ]

    def act() -> Any:
        found = topup_orders.order_by_id(session, transaction_id)
        ctx = acting()
        checked = settlement.ask_xorpay(session, gateway(), found, ctx=ctx)
        flash(_("XorPay was asked; the order is %(status)s.", status=payment_status_label(checked.status)), "info")
        return redirect(back)

    return confirm_then(form, preview, act, back=back)


@bp.post("/orders/<transaction_id>/mark-paid")
def mark_paid(transaction_id: str) -> Any:
    form, session, back = MarkPaidForm(), get_session(), url_for("admin.order", transaction_id=transaction_id)

    def preview() -> list[str]:
        reason_of(form.reason.data)
        found = topup_orders.order_by_id(session, transaction_id)
        balance = accounts.get_balance(session, found.user_id)
        return [
            _("Order %(id)s is marked paid with trade number %(trade)s.", id=found.id, trade=form.trade_no.data or "—"),
            balance_change(balance, balance + found.amount),
        ]

    def act() -> Any:
        settlement.mark_paid(session, acting(), transaction_id, trade_no=form.trade_no.data, reason=form.reason.data)
        flash(_("The order is paid and credited."), "success")
        return redirect(back)

    return confirm_then(form, preview, act, back=back)


@bp.post("/orders/<transaction_id>/refund")
def refund(transaction_id: str) -> Any:
    form, session, back = RefundForm(), get_session(), url_for("admin.order", transaction_id=transaction_id)

    def preview() -> list[str]:
        reason_of(form.reason.data)
        plan = refunds.preview_refund_order(session, acting(), transaction_id, form.amount.data)
        return [
            _(
                "Refund ¥%(amount)s of ¥%(total)s through XorPay (refundable ¥%(left)s).",
                amount=format_amount(plan.amount),
                total=format_amount(plan.order.amount),
                left=format_amount(plan.refundable),
            ),
            balance_change(plan.balance, plan.balance - plan.amount),
        ]

    def act() -> Any:
        done = refunds.refund_order(
            session, gateway(), acting(), transaction_id, form.amount.data, reason=form.reason.data
        )
        messages = {
            "succeeded": (_("The refund went through."), "success"),
            "failed": (_("XorPay refused the refund; nothing was taken."), "warning"),
            "pending": (_("XorPay did not answer: the refund is pending. Check at XorPay, then resolve it."), "danger"),
        }
        flash(*messages[done.status.value])
        return redirect(back)

    return confirm_then(form, preview, act, back=back)


@bp.post("/refunds/<refund_id>/resolve")
def resolve(refund_id: str) -> Any:
    form, session = ActionForm(), get_session()
    succeeded = request.form.get("outcome") == "succeeded"
    back = safe_next_url(request.form.get("back"), url_for("admin.orders"), under="/admin/")

    def preview() -> list[str]:
        reason_of(form.reason.data)
        if succeeded:
            return [_("The refund is recorded as made at XorPay: its amount leaves the balance.")]
        return [_("The refund is recorded as not made: its amount is available again.")]

    def act() -> Any:
        refunds.settle_refund(session, acting(), refund_id, succeeded=succeeded, reason=form.reason.data)
        flash(_("The refund is resolved."), "success")
        return redirect(back)

    return confirm_then(form, preview, act, back=back)


def _day(raw: str | None, field: str) -> date | None:
    return day(raw, field, first=date(1970, 1, 1), last=date(9999, 12, 30)) if raw else None
