"""How a top-up may be paid (payments.methods): exactly Alipay or WeChat Pay, and each method's range."""

from decimal import Decimal

import pytest

from ledger.errors import InvalidRequest, InvalidTopupAmount
from ledger.models import PayType
from ledger.services.payments.methods import OVER_THE_LIMIT, method_maximum, parse_pay_type, parse_topup_amount


def test_each_method_has_its_own_maximum(settings):
    assert method_maximum(settings, PayType.ALIPAY) == Decimal("1000.00")
    assert method_maximum(settings, PayType.NATIVE) == Decimal("20000.00")


@pytest.mark.parametrize(("raw", "pay_type"), [("alipay", PayType.ALIPAY), ("native", PayType.NATIVE)])
def test_a_pay_type_is_exactly_alipay_or_native(raw, pay_type):
    assert parse_pay_type(raw) is pay_type


@pytest.mark.parametrize("raw", ["wechat", "ALIPAY", " alipay", "", None, 1, ["native"]])
def test_any_other_pay_type_is_refused_on_its_field(raw):
    with pytest.raises(InvalidRequest) as refused:
        parse_pay_type(raw)
    assert refused.value.field == "pay_type"


@pytest.mark.parametrize(
    ("raw", "pay_type", "amount"),
    [
        ("1", PayType.ALIPAY, Decimal("1.00")),
        ("30.5", PayType.ALIPAY, Decimal("30.50")),
        ("1000.00", PayType.ALIPAY, Decimal("1000.00")),
        ("20000", PayType.NATIVE, Decimal("20000.00")),
    ],
)
def test_an_amount_in_the_methods_range_is_kept_exactly(settings, raw, pay_type, amount):
    parsed = parse_topup_amount(raw, settings, pay_type)
    assert parsed == amount and str(parsed) == str(amount)


@pytest.mark.parametrize(
    ("raw", "pay_type", "message"),
    [
        ("1000.01", PayType.ALIPAY, OVER_THE_LIMIT[PayType.ALIPAY, True]),
        ("20000.01", PayType.ALIPAY, OVER_THE_LIMIT[PayType.ALIPAY, False]),
        ("20000.01", PayType.NATIVE, OVER_THE_LIMIT[PayType.NATIVE, False]),
    ],
)
def test_an_amount_over_the_methods_maximum_says_so_and_names_the_other_method(settings, raw, pay_type, message):
    with pytest.raises(InvalidTopupAmount) as refused:
        parse_topup_amount(raw, settings, pay_type)
    assert (refused.value.message, refused.value.field) == (message, "amount")


@pytest.mark.parametrize("raw", ["0.99", "0", "", "  ", "10.001", "abc", "-5", "1e2", 50, 50.5, None])
def test_what_is_not_an_amount_in_the_range_is_refused_on_the_amount(settings, raw):
    with pytest.raises(InvalidTopupAmount) as refused:
        parse_topup_amount(raw, settings)
    assert refused.value.field == "amount"
