"""How a top-up may be paid (SPEC 7): Alipay or WeChat Pay (XorPay's `native`) through XorPay, and
how much one payment may be with each: TOPUP_MIN to TOPUP_MAX with Alipay (XorPay takes at most
1,000 a payment), to TOPUP_MAX_WECHAT with WeChat Pay."""

from __future__ import annotations

import re
from decimal import Decimal

from ledger.config import Settings
from ledger.errors import InvalidRequest, InvalidTopupAmount
from ledger.i18n import N_
from ledger.models import PayType
from ledger.money import InvalidAmount, parse_amount

# What a typed amount that does not parse looks like: digits with too many decimals, or digits at all.
_MANY_DECIMALS = re.compile(r"[0-9]+\.[0-9]{3,}")
_DIGITS = re.compile(r"[0-9]+(?:\.[0-9]*)?")

# An amount above what the chosen method takes: said with the method's limit, and the other
# method's when that one would take it (key: the method, whether the other one would).
OVER_THE_LIMIT = {
    (PayType.ALIPAY, True): N_(
        "Alipay takes at most ¥%(maximum)s a payment: choose WeChat Pay (up to ¥%(other)s), or pay in parts."
    ),
    (PayType.ALIPAY, False): N_("Alipay takes at most ¥%(maximum)s a payment: top up in several payments."),
    (PayType.NATIVE, True): N_(
        "WeChat Pay takes at most ¥%(maximum)s a payment: choose Alipay (up to ¥%(other)s), or pay in parts."
    ),
    (PayType.NATIVE, False): N_("WeChat Pay takes at most ¥%(maximum)s a payment: top up in several payments."),
}


def method_maximum(settings: Settings, pay_type: PayType) -> Decimal:
    """The most one top-up may be with this method: TOPUP_MAX with Alipay, TOPUP_MAX_WECHAT with WeChat Pay."""
    return settings.TOPUP_MAX_WECHAT if pay_type is PayType.NATIVE else settings.TOPUP_MAX


def parse_pay_type(raw: object) -> PayType:
    """How the person pays: exactly `alipay` or `native` (WeChat Pay). Raises InvalidRequest."""
    if isinstance(raw, str) and raw in tuple(PayType):
        return PayType(raw)
    raise InvalidRequest(N_("Choose Alipay or WeChat Pay."), field="pay_type")


def _refuse_what_is_not_an_amount(raw: str, settings: Settings, maximum: Decimal) -> None:
    """Say what is wrong with a typed amount that does not parse, when it is more than the range:
    nothing chosen, not written in digits, or more than 2 decimals (cents of a fen)."""
    if not raw.strip():
        raise InvalidTopupAmount(N_("Choose an amount or type one."), field="amount")
    if _MANY_DECIMALS.fullmatch(raw):
        raise InvalidTopupAmount(N_("Amounts go down to the fen: at most 2 decimals, such as 30.50."), field="amount")
    if not _DIGITS.fullmatch(raw):
        raise InvalidTopupAmount(
            N_("Type the amount in digits, such as 50 or 30.50 (from ¥%(minimum)s to ¥%(maximum)s)."),
            field="amount",
            minimum=settings.TOPUP_MIN,
            maximum=maximum,
        )


def parse_topup_amount(raw: object, settings: Settings, pay_type: PayType = PayType.ALIPAY) -> Decimal:
    """A top-up amount: an exact decimal string with at most 2 places, from TOPUP_MIN to what the
    method takes (`method_maximum`). Raises InvalidTopupAmount (422 invalid_amount)."""
    maximum = method_maximum(settings, pay_type)
    if not isinstance(raw, str):  # a JSON number: refused, saying that money is a string
        return parse_amount(raw, places=2, error=InvalidTopupAmount)
    try:
        amount: Decimal | None = parse_amount(raw, places=2)
    except InvalidAmount:
        amount = None
        _refuse_what_is_not_an_amount(raw, settings, maximum)
    if amount is not None and amount > maximum:
        other_type = PayType.ALIPAY if pay_type is PayType.NATIVE else PayType.NATIVE
        other = method_maximum(settings, other_type)
        message = OVER_THE_LIMIT[pay_type, amount <= other]
        raise InvalidTopupAmount(message, field="amount", minimum=settings.TOPUP_MIN, maximum=maximum, other=other)
    if amount is None or not settings.TOPUP_MIN <= amount <= maximum:
        # The range and the two decimals: all a person typing an amount needs to hear.
        raise InvalidTopupAmount(field="amount", minimum=settings.TOPUP_MIN, maximum=maximum)
    return amount
