"""The price catalogue: quote() prices exactly and refuses what the catalogue does not offer."""

from decimal import Decimal

import pytest

from ledger.errors import InvalidRequest, UnknownModel
from ledger.services.console.pricing import quote


@pytest.mark.parametrize(
    ("model", "params", "amount"),
    [
        ("image-studio-v2", {"resolution": "1024", "images": "3"}, "0.60"),
        ("image-studio-v2", {}, "0.20"),
        ("motion-video-1", {"quality": "1080p", "seconds": "12"}, "18.00"),
        ("chat-pro", {"tier": "standard", "tokens": "1234"}, "0.0247"),  # 0.02468 rounded up
        ("chat-pro", {"tier": "long-context", "tokens": "200000"}, "12.00"),
    ],
)
def test_quote_prices_exactly(model, params, amount):
    assert quote(model, params).amount == Decimal(amount)


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("image-studio-v2", {"images": "0"}),
        ("image-studio-v2", {"images": "9"}),
        ("image-studio-v2", {"resolution": "4096"}),
        ("motion-video-1", {"seconds": "1.5"}),
        ("chat-pro", {"tokens": "-5"}),
        ("chat-pro", {"tokens": "²"}),
        ("chat-pro", {"tokens": "١٢٣"}),
        ("chat-pro", {"tokens": "9" * 5000}),
    ],
)
def test_quote_refuses_parameters_out_of_range(model, params):
    with pytest.raises(InvalidRequest):
        quote(model, params)


def test_quote_refuses_unknown_model():
    with pytest.raises(UnknownModel):
        quote("gpt-99", {})
