from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

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


class PlanEditForm(ActionForm):
    """What an edit of a plan may change (from each subscription's next period)."""

    name_zh = StringField(_l("Name in Chinese"), render_kw={"maxlength": 100})
    name_en = StringField(_l("Name in English"), render_kw={"maxlength": 100})
    price = StringField(_l("Price a period (CNY)"), render_kw={"inputmode": "decimal", "placeholder": "30.00"})
    allowance = StringField(
        _l("Allowance a period (CNY)"),
        description=_l("Plan money granted each period; what is left at the period's end expires."),
        render_kw={"inputmode": "decimal", "placeholder": "50.00"},
    )


class PlanForm(PlanEditForm):
    code = StringField(
        _l("Plan code"),
        description=_l(
            "2 to 32 lowercase letters, digits and dashes, such as pro-monthly: the API's name of the plan."
        ),
        render_kw={"maxlength": 32, "autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"},
    )
    # The service says what a period may be, in the person's language (no WTForms message).
    period = SelectField(
        _l("Period"),
        choices=[SelectChoice("month", _l("A month")), SelectChoice("week", _l("A week"))],
        validate_choice=False,
    )


class LimitForm(ActionForm):
    # The rules are the service's (limits.set_limits); empty clears the admin's limit of that period.
    day = StringField(
        _l("Daily spending limit (CNY)"), description=_l("Empty: no limit set by an admin. 0: nothing may be spent.")
    )
    month = StringField(_l("Monthly spending limit (CNY)"))
