"""The JSON API's field types (pydantic), from which ledger.web.schemas builds each route's request
and answer: money, ids, texts, params, each with the constraint its service checks written as JSON
Schema (patterns made from the services' own rules: ledger.money, ledger.validation), and what a
refused value is answered with (RefusedAs: the field's service's own words)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    RootModel,
    TypeAdapter,
)
from pydantic_core import CoreSchema, core_schema

from ledger import validation
from ledger.errors import InvalidRequest
from ledger.i18n import N_
from ledger.models import PayType
from ledger.money import EXACT_DECIMAL, MAX_CHARGE, STORAGE_PLACES, amount_pattern, parse_amount
from ledger.services.books import accounts
from ledger.services.payments.methods import parse_topup_amount
from ledger.web.context import settings


@dataclass(frozen=True)
class Format:
    """The JSON Schema `format` of a string field (an annotation for readers and tools: the field's
    pattern is what is checked)."""

    name: str

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {**handler(schema), "format": self.name}


@dataclass(frozen=True)
class RefusedAs:
    """How a value that this field's schema refuses is answered (SPEC 6): as the service that reads
    the field answers it. `check(value, field, given)` is that service's own check of the raw value
    (`given`: the whole body or query) and raises its refusal (ledger.web.openapi calls it)."""

    check: Callable[[Any, str, Mapping[str, Any]], object]


UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
NO_NUL = "^[^\\x00]*$"  # text PostgreSQL can store (a lone surrogate cannot even be sent as UTF-8)

Money = Annotated[
    str,
    Field(
        pattern=f"^{EXACT_DECIMAL.pattern}$",
        description=N_('Money as an exact decimal string in yuan (CNY), such as "12.50": never a JSON number.'),
        examples=["12.50"],
    ),
    Format("decimal"),
]
# What a charge, a hold and a capture take (SPEC 5): more than 0, at most 4 decimals, at most 1,000,000.
ChargeAmount = Annotated[
    str,
    Field(
        pattern=amount_pattern(places=STORAGE_PLACES, maximum=MAX_CHARGE),
        description=N_(
            'Yuan as an exact decimal string such as "12.50" (never a JSON number): more than 0, at most '
            "4 decimal places, at most 1,000,000."
        ),
        examples=["12.50"],
    ),
    Format("decimal"),
    RefusedAs(lambda value, field, _: parse_amount(value, places=STORAGE_PLACES, maximum=MAX_CHARGE, field=field)),
]
# A top-up's amount: fen at most, positive. Its bounds are settings (TOPUP_MIN, TOPUP_MAX by method):
# the service checks them, and ledger.web.openapi writes this site's into the document's pattern.
TOPUP_PLACES = 2
TopupAmount = Annotated[
    str,
    Field(
        pattern=amount_pattern(places=TOPUP_PLACES, maximum=Decimal("99999999999999.99")),
        description=N_(
            'Yuan as an exact decimal string such as "50.00" (never a JSON number), at most 2 decimal places, '
            "from TOPUP_MIN to TOPUP_MAX with Alipay or to TOPUP_MAX_WECHAT with WeChat Pay: the pattern "
            "holds this site's figures."
        ),
        examples=["50.00"],
    ),
    Format("decimal"),
    RefusedAs(
        lambda value, _, given: parse_topup_amount(
            value,
            settings(),
            PayType(given["pay_type"]) if given.get("pay_type") in tuple(PayType) else PayType.ALIPAY,
        )
    ),
]
Uuid = Annotated[
    str,
    Field(
        pattern=UUID_PATTERN,
        description=N_("A UUID."),
        examples=["4c6f0c2e-9b8a-4f4e-9d6b-3c1f8b2a7e10"],
    ),
    Format("uuid"),
    RefusedAs(lambda _, field, __: validation.uuid_of(None, field)),  # however it is wrong, one message
]
Time = Annotated[str, Field(description=N_("ISO 8601 with the offset of the person's (or site's) time zone."))]
RequestId = Annotated[
    str,
    Field(
        pattern=validation.text_pattern(max_length=accounts.REQUEST_ID_MAX_LENGTH, strip=False),
        description=N_("Yours, 1 to 128 characters: a repeat of the same id is a replay, charged once."),
    ),
    RefusedAs(
        lambda value, field, _: validation.text(value, field, max_length=accounts.REQUEST_ID_MAX_LENGTH, strip=False)
    ),
]
Model = Annotated[
    str,
    Field(
        pattern=validation.text_pattern(max_length=accounts.MODEL_MAX_LENGTH),
        description=N_("The paid feature's model name: 1 to 100 characters, surrounding spaces aside."),
    ),
    RefusedAs(lambda value, field, _: validation.text(value, field, max_length=accounts.MODEL_MAX_LENGTH)),
]


class _NulFreeKeys:
    """In the document, an object's keys have no NUL either."""

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {**handler(schema), "propertyNames": {"pattern": NO_NUL}}


# Documents what `params` may hold (the fields validate with _JsonObject, by the service's own check).
class PlainJson(
    RootModel[
        Annotated[str, Field(pattern=NO_NUL)]
        | bool
        | int
        | float
        | list["PlainJson"]
        | Annotated[dict[str, "PlainJson"], _NulFreeKeys()]
        | None
    ]
):
    """Any JSON value without a NUL character in its texts or keys."""


_PARAMS_AS_DOCUMENTED = TypeAdapter(Annotated[dict[str, PlainJson], _NulFreeKeys()]).core_schema


class _JsonObject:
    """A JSON object as the service takes it (`validation.json_object`: JSON that JSONB can store,
    at most PARAMS_MAX_BYTES): checked whole by that same check, documented as PlainJson (at any depth)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        def storable(value: dict[str, Any]) -> dict[str, Any]:
            try:
                return validation.json_object(value, "params", max_bytes=accounts.PARAMS_MAX_BYTES)
            except InvalidRequest as refused:
                raise ValueError(str(refused)) from None

        return core_schema.no_info_after_validator_function(storable, core_schema.dict_schema())

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return handler(_PARAMS_AS_DOCUMENTED)


Params = Annotated[
    _JsonObject | None,
    Field(
        description=N_("Anything about the use, kept with it: a JSON object of at most 16 KB, without NUL characters.")
    ),
    RefusedAs(lambda value, field, _: validation.json_object(value, field, max_bytes=accounts.PARAMS_MAX_BYTES)),
]


class Schema(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown fields are ignored, as the views always did


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def optional(**kwargs: Any) -> Any:
    """A query parameter that may be left out (for its default), and is never empty or null when given."""
    return Field(None, json_schema_extra=_no_default, **kwargs)
