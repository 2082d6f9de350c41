from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, HiddenField, StringField, TextAreaField

from ledger.web.parsing import TextForm


class ActionForm(TextForm):
    """An admin action: its reason (the service checks it: required, 1 to 500 characters), and
    whether the confirmation step has been seen."""

    reason = TextAreaField(_l("Reason"), description=_l("Kept in the audit trail; the person does not see it."))
    confirmed = HiddenField()

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed.data == "yes"


class AdjustForm(ActionForm):
    amount = StringField(_l("Amount (CNY)"), description=_l("A positive amount such as 50.00."))
    debit = BooleanField(_l("Take money away (a debit)"))
    expires_at = StringField(
        _l("Expires at (optional)"),
        description=_l("A credit only, in your time zone. Empty: the site's rule for given money."),
        render_kw={"type": "datetime-local"},
    )


class MarkPaidForm(ActionForm):
    trade_no = StringField(
        _l("Trade number"), description=_l("From the payment's receipt in Alipay or WeChat Pay, as a proof.")
    )


class RefundForm(ActionForm):
    amount = StringField(_l("Amount to refund (CNY)"))


class CodeBatchForm(ActionForm):
    count = StringField(_l("Number of codes"), render_kw={"inputmode": "numeric", "placeholder": "1 – 10000"})
    amount = StringField(_l("Amount of each code (CNY)"), render_kw={"inputmode": "decimal", "placeholder": "50.00"})
    expires = StringField(_l("Last day to redeem (optional)"), render_kw={"type": "date"})
    credit_days = StringField(
        _l("Days the credit lasts (optional)"),
        description=_l("After each redemption. Empty: the site's rule for given money."),
        render_kw={"inputmode": "numeric", "placeholder": "30"},
    )
    note = StringField(_l("Note (optional)"), render_kw={"maxlength": 200})


class LimitForm(ActionForm):
    # The rules are the service's (limits.set_limits); empty clears the admin's limit of that period.
    day = StringField(
        _l("Daily spending limit (CNY)"), description=_l("Empty: no limit set by an admin. 0: nothing may be spent.")
    )
    month = StringField(_l("Monthly spending limit (CNY)"))
