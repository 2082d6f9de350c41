"""`/recharge`: top up with Alipay or WeChat Pay through XorPay, watch the order, check it, see past
top-ups, their receipts and their CSV; redeem a code."""

from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from wtforms import StringField

from ledger.db import get_session
from ledger.i18n import N_
from ledger.models import PaymentStatus, PayType
from ledger.money import EXACT_DECIMAL, format_amount, normalise_typed_amount
from ledger.services.books.accounts import funds, get_balance
from ledger.services.books.lots import kinds_of
from ledger.services.growth.codes import redeem as redeem_code
from ledger.services.payments.methods import method_maximum
from ledger.services.payments.orders import (
    create_topup,
    get_own_order,
    list_orders,
    own_receipt,
    topups_csv,
    topups_csv_filename,
)
from ledger.services.payments.refunds import order_refunds
from ledger.services.payments.settlement import check_payment
from ledger.web.context import gateway, now, request_context, settings, user_timezone
from ledger.web.limits import topup_check, topup_creation
from ledger.web.parsing import Form, TextForm, flash_errors, submit
from ledger.web.templating import qr_svg

bp = Blueprint("payments", __name__)

CENT = Decimal("0.01")
PRESETS = (Decimal(10), Decimal(50), Decimal(100), Decimal(200))
DEFAULT_PRESET = Decimal(50)
# What "check now" says for each outcome.
CHECKED = {
    PaymentStatus.SUCCEEDED: ("success", N_("Payment received. Your balance has been topped up.")),
    PaymentStatus.EXPIRED: ("warning", N_("This order has expired. Please start a new top-up.")),
}
NOT_YET = ("info", N_("No payment has arrived yet. If you have just paid, wait a few seconds and check again."))


class RechargeForm(TextForm):
    pay_type = StringField(default=PayType.ALIPAY.value)  # alipay or native (WeChat Pay): the service checks
    amount = StringField()  # a preset; none posted (the person cleared it by typing) is no amount, not the default
    custom_amount = StringField()  # what the person typed: normalised (５０, 50元...) before the exact parse

    def chosen_amount(self) -> object:
        return (
            normalise_typed_amount(self.custom_amount.data)
            if (self.custom_amount.data or "").strip()
            else self.amount.data or ""
        )

    def shown_amount(self) -> Decimal | None:
        """The amount the pay button names: what was typed when it reads as money, else the preset."""
        chosen = self.chosen_amount()
        if not isinstance(chosen, str) or not EXACT_DECIMAL.fullmatch(chosen):
            return None
        amount = Decimal(chosen)
        return amount if amount > 0 and amount == amount.quantize(CENT) else None


class RedeemForm(TextForm):
    code = StringField()  # checked by the service: it matches codes without spaces, dashes or case


def _recharge_page(form: RechargeForm | None = None, redeem: RedeemForm | None = None) -> Any:
    """The page with its two forms; the one posted (and refused) carries its errors and status."""
    config, session, at = settings(), get_session(), now()
    form = form or RechargeForm(formdata=None, data={"amount": str(DEFAULT_PRESET)})
    redeem = redeem or RedeemForm(formdata=None)
    return render_template(
        "payments/recharge.html",
        balance=funds(session, current_user.id, at).balance,
        kinds=kinds_of(session, current_user.id, at),
        presets=PRESETS,
        orders=list_orders(session, user_id=current_user.id),
        form=form,
        redeem=redeem,
        minimum=config.TOPUP_MIN,
        methods=[(method, method_maximum(config, method)) for method in PayType],
    ), max(form.status, redeem.status)


@bp.get("/recharge")
@login_required
def recharge() -> Any:
    return _recharge_page()


@bp.post("/recharge")
@login_required
@topup_creation
def start() -> Any:
    form = RechargeForm()
    order = submit(
        form,
        lambda: create_topup(
            get_session(),
            gateway(),
            user=current_user,
            amount=form.chosen_amount(),
            pay_type=form.pay_type.data,
            ctx=request_context(),
        ),
        fields={"amount": "custom_amount"},
    )
    if order is None:
        return _recharge_page(form=form)
    return redirect(url_for("payments.order", transaction_id=order.id))


@bp.post("/recharge/redeem")
@login_required
def redeem() -> Any:
    form = RedeemForm()
    done = submit(form, lambda: redeem_code(get_session(), current_user.id, form.code.data, request_context()))
    if done is None:
        return _recharge_page(redeem=form)
    flash(
        _(
            "Code redeemed: ¥%(amount)s added. Your balance is now ¥%(balance)s.",
            amount=format_amount(done.amount),
            balance=format_amount(done.balance),
        ),
        "success",
    )
    return redirect(url_for("payments.recharge"))


@bp.get("/recharge/<transaction_id>")
@login_required
def order(transaction_id: str) -> Any:
    session = get_session()
    topup = get_own_order(session, user_id=current_user.id, transaction_id=transaction_id)
    qr = topup.meta.get("qr")
    return render_template(
        "payments/order.html",
        order=topup,
        qr=qr,
        qr_svg=qr_svg(qr) if qr and topup.status == PaymentStatus.PENDING else None,
        balance=get_balance(session, current_user.id),
        refunds=order_refunds(session, topup),
    )


@bp.post("/recharge/<transaction_id>/check")
@login_required
@topup_check
def check(transaction_id: str) -> Any:
    form = Form()
    topup = submit(
        form,
        lambda: check_payment(
            get_session(),
            gateway(),
            user_id=current_user.id,
            transaction_id=transaction_id,
            ctx=request_context(),
        ),
    )
    if topup is None:  # XorPay could not be asked
        flash_errors(form)
    else:
        category, message = CHECKED.get(topup.status, NOT_YET)
        flash(_(message), category)
    return redirect(url_for("payments.order", transaction_id=transaction_id))


@bp.get("/recharge/topups.csv")
@login_required
def export_topups() -> Any:
    """Every top-up of the person as a CSV download (times in their zone, named by their today)."""
    tz = user_timezone()
    return Response(
        topups_csv(get_session(), user_id=current_user.id, tz=tz),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{topups_csv_filename(now().astimezone(tz).date())}"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/recharge/<transaction_id>/receipt")
@login_required
def receipt(transaction_id: str) -> Any:
    """The printable receipt of one of the person's paid top-ups."""
    session = get_session()
    paid = own_receipt(session, user_id=current_user.id, transaction_id=transaction_id)
    refunds = order_refunds(session, paid)
    return render_template("payments/receipt.html", order=paid, refunds=refunds, site_url=settings().SITE_URL)
