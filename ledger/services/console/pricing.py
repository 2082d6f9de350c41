"""The price catalogue: the console's sample models, their parameters and prices, quotes, and a
simulated run that is charged through the ledger core.

Prices are computed here only; the page asks the server for a quote instead of repeating the
arithmetic in JavaScript.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal

from sqlalchemy.orm import Session

from ledger import validation
from ledger.errors import InvalidRequest, UnknownModel
from ledger.i18n import N_
from ledger.money import STORAGE_QUANTUM
from ledger.services.books.charges import charge_usage
from ledger.services.books.engine import Charge
from ledger.services.context import Context


@dataclass(frozen=True)
class Param:
    name: str
    label: str
    default: str
    choices: tuple[str, ...] = ()  # a choice parameter, or else a whole number in [minimum, maximum]
    minimum: int = 1
    maximum: int = 1
    choice_labels: Mapping[str, str] = field(default_factory=dict)  # how a choice reads (marked N_)

    def label_of(self, value: object) -> str:
        """How a value of this parameter reads on a page (translate it there): a choice's label, or
        the value itself."""
        return self.choice_labels.get(str(value), str(value))

    def parse(self, raw: object) -> str | int:
        """The parameter's value from a form or a query (missing: the default); InvalidRequest otherwise."""
        raw = self.default if raw is None else raw
        if self.choices:
            if raw not in self.choices:
                raise InvalidRequest(
                    N_("Choose one of: %(choices)s."), field=self.name, choices=", ".join(self.choices)
                )
            return str(raw)
        return validation.whole_number(raw, self.name, minimum=self.minimum, maximum=self.maximum)


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    description: str
    unit: str
    params: tuple[Param, ...]
    # Price of one unit for each value of the first parameter.
    unit_prices: Mapping[str, Decimal] = field(default_factory=dict)


MODELS: dict[str, Model] = {
    m.id: m
    for m in (
        Model(
            id="image-studio-v2",
            name="Image Studio v2",
            description=N_("Text to image. Priced per image, by resolution."),
            unit=N_("image"),
            params=(
                Param(
                    "resolution",
                    N_("Resolution"),
                    "1024",
                    choices=("512", "1024", "2048"),
                    choice_labels={"512": "512 × 512", "1024": "1024 × 1024", "2048": "2048 × 2048"},
                ),
                Param("images", N_("Images"), "1", minimum=1, maximum=8),
            ),
            unit_prices={"512": Decimal("0.10"), "1024": Decimal("0.20"), "2048": Decimal("0.50")},
        ),
        Model(
            id="motion-video-1",
            name="Motion Video 1",
            description=N_("Text to video. Priced per second of video, by quality."),
            unit=N_("second"),
            params=(
                Param("quality", N_("Quality"), "720p", choices=("720p", "1080p")),
                Param("seconds", N_("Seconds"), "5", minimum=1, maximum=60),
            ),
            unit_prices={"720p": Decimal("0.80"), "1080p": Decimal("1.50")},
        ),
        Model(
            id="chat-pro",
            name="Chat Pro",
            description=N_("Chat completion. Priced per 1,000 tokens."),
            unit=N_("1k tokens"),
            params=(
                Param(
                    "tier",
                    N_("Tier"),
                    "standard",
                    choices=("standard", "long-context"),
                    choice_labels={"standard": N_("Standard"), "long-context": N_("Long context")},
                ),
                Param("tokens", N_("Tokens"), "2000", minimum=1, maximum=200_000),
            ),
            unit_prices={"standard": Decimal("0.02"), "long-context": Decimal("0.06")},
        ),
    )
}


@dataclass(frozen=True)
class Quote:
    model: Model
    params: dict[str, str | int]
    unit_price: Decimal
    quantity: Decimal
    amount: Decimal


def quote(model_id: object, raw_params: Mapping[str, object]) -> Quote:
    """Price one run of a model; raises UnknownModel or InvalidRequest naming the bad parameter."""
    model = MODELS.get(model_id) if isinstance(model_id, str) else None
    if model is None:
        raise UnknownModel(field="model")
    params = {p.name: p.parse(raw_params.get(p.name)) for p in model.params}
    tier, count = (params[p.name] for p in model.params)
    unit_price = model.unit_prices[str(tier)]
    quantity = Decimal(count) / 1000 if model.unit == "1k tokens" else Decimal(count)
    # A fraction of the smallest unit we store is rounded up: we never undercharge by a rounding.
    amount = (unit_price * quantity).quantize(STORAGE_QUANTUM, rounding=ROUND_UP)
    return Quote(model=model, params=params, unit_price=unit_price, quantity=quantity, amount=amount)


@dataclass(frozen=True)
class Offer:
    """A model as the console shows it: priced with the person's values, or with its defaults and
    the reason when those values cannot be priced."""

    model: Model
    quote: Quote
    error: InvalidRequest | None = None


def console_run(model_id: object, params: object) -> Quote | None:
    """A charge's model and parameters read back as a run of the console, or None when they are not
    exactly one: an API charge may name any model with any parameters, and those are data to show
    as sent, never labels to translate or values to compute with."""
    model = MODELS.get(model_id) if isinstance(model_id, str) else None
    if model is None or not isinstance(params, Mapping) or set(params) != {p.name for p in model.params}:
        return None
    try:
        return quote(model.id, params)
    except InvalidRequest:
        return None


def offers(selected: object, raw_params: Mapping[str, object]) -> dict[str, Offer]:
    """Every model priced: `selected` with `raw_params` (the values a person chose), the others with defaults."""
    priced = {}
    for model_id, model in MODELS.items():
        try:
            priced[model_id] = Offer(model, quote(model_id, raw_params if model_id == selected else {}))
        except InvalidRequest as exc:
            priced[model_id] = Offer(model, quote(model_id, {}), exc)
    return priced


def run_model(
    session: Session,
    *,
    user_id: uuid.UUID,
    model_id: object,
    raw_params: Mapping[str, object],
    run_id: object,
    ctx: Context,
) -> tuple[Quote, Charge]:
    """Price and charge one (simulated) run.

    `run_id` (a UUID) comes with the page's form, so a resubmitted form is a replay; a malformed
    one is InvalidRequest, never silently a new run. Console runs are charged under request ids of
    their own ("console:<uuid>"): a person cannot take an id that another service of the SaaS will use.
    """
    run_id = validation.uuid_of(run_id, "request_id")
    priced = quote(model_id, raw_params)
    charge = charge_usage(
        session,
        user_id=user_id,
        amount=priced.amount,
        model=priced.model.id,
        request_id=f"console:{run_id}",
        params=priced.params,
        ctx=ctx,
    )
    return priced, charge
