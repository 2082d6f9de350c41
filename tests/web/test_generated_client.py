"""A client generated from GET /api/openapi.json, as an integrator would make one
(datamodel-code-generator, pydantic models), knows every shape the SaaS handles: the batch's items
are typed as a deduct's body, the batch answer's items as what each status carries, and each
event of the `webhooks` has a model that the events Ledger really posts fit."""

from __future__ import annotations

import importlib.util
import json
import sys
import typing
import warnings
from types import ModuleType

import pytest
from datamodel_code_generator import DataModelType, InputFileType, OpenAPIScope, generate
from datamodel_code_generator.format import Formatter
from sqlalchemy import select

from ledger.models import Event
from ledger.services.backoffice.people import adjust
from ledger.services.events import body_of
from tests.factories import UserFactory
from tests.helpers import ADMIN, charge


@pytest.fixture(scope="module")
def client_models(app, tmp_path_factory) -> ModuleType:
    """The document's models as a module of pydantic classes, generated and imported."""
    document = app.test_client().get("/api/openapi.json").get_json()
    out = tmp_path_factory.mktemp("client") / "ledger_client.py"
    with warnings.catch_warnings():  # what pydantic cannot say of a few fields (a pattern on a UUID): noted, fine
        warnings.simplefilter("ignore", UserWarning)
        generate(
            json.dumps(document),
            input_file_type=InputFileType.OpenAPI,
            output=out,
            output_model_type=DataModelType.PydanticV2BaseModel,
            openapi_scopes=[OpenAPIScope.Schemas, OpenAPIScope.Paths],
            use_annotated=True,
            field_constraints=True,
            formatters=[Formatter.BUILTIN],
        )
    spec = importlib.util.spec_from_file_location("ledger_client", out)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["ledger_client"] = module  # pydantic resolves the module's forward references through it
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("ledger_client", None)


def test_the_batch_items_are_typed_as_a_deducts_body(client_models):
    (item,) = typing.get_args(client_models.BatchBody.model_fields["charges"].annotation)
    assert {"user_id", "amount", "model", "request_id", "params"} <= set(item.model_fields)
    assert {name for name, field in item.model_fields.items() if field.is_required()} == {
        "user_id",
        "amount",
        "model",
        "request_id",
    }
    body = client_models.BatchBody(
        charges=[item(user_id="4c6f0c2e-9b8a-4f4e-9d6b-3c1f8b2a7e10", amount="0.20", model="m", request_id="r-1")]
    )
    assert body.model_dump(mode="json", exclude_none=True)["charges"][0]["amount"] == "0.20"


def test_a_real_batch_answer_parses_into_the_generated_models(client_models, client, internal_headers, session):
    payer = UserFactory(balance="1.00")
    body = {
        "charges": [
            {"user_id": str(payer.id), "amount": "0.40", "model": "upscale", "request_id": "gen-1"},
            {"user_id": str(payer.id), "amount": "9.00", "model": "upscale", "request_id": "gen-2"},
            {"user_id": str(payer.id), "amount": 1, "model": "upscale", "request_id": "gen-3"},
        ]
    }
    answer = client_models.BatchAnswer.model_validate(
        client.post("/api/billing/deduct/batch", json=body, headers=internal_headers).get_json()
    )
    charged, short, bad = answer.results
    assert (charged.status.value, charged.model_dump(mode="json")["balance"]) == ("charged", "0.60")
    assert (short.status.value, short.error.code) == ("insufficient_balance", "insufficient_balance")
    assert (bad.status.value, bad.error.code) == ("invalid_request", "invalid_request")


def test_every_webhook_has_a_model_and_its_sample_fits(client_models, app):
    document = app.test_client().get("/api/openapi.json").get_json()
    assert set(document["webhooks"]) == {
        "topup.succeeded",
        "balance.low",
        "hold.expired",
        "refund.succeeded",
        "refund.failed",
        "redemption.redeemed",
        "balance.adjusted",
        "credit.expiring",
        "credit.expired",
        "subscription.renewed",
        "subscription.lapsed",
        "limit.reached",
    }
    for name, webhook in document["webhooks"].items():
        content = webhook["post"]["requestBody"]["content"]["application/json"]
        model = getattr(client_models, content["schema"]["$ref"].rsplit("/", 1)[1])
        for example in content["examples"].values():
            event = model.model_validate(example["value"])
            assert event.type.value if hasattr(event.type, "value") else event.type == name


def test_the_events_ledger_really_posts_fit_their_webhook_models(client_models, app, session):
    document = app.test_client().get("/api/openapi.json").get_json()
    person = UserFactory()
    adjust(session, ADMIN, str(person.id), "12.00", debit=False, reason="goodwill")  # balance.adjusted
    charge(session, person, amount="3.00")  # 12 -> 9: below the threshold of 10, balance.low
    posted = session.scalars(select(Event).where(Event.user_id == person.id).order_by(Event.created_at)).all()
    assert sorted(event.type.value for event in posted) == ["balance.adjusted", "balance.low"]
    for event in posted:
        ref = document["webhooks"][event.type.value]["post"]["requestBody"]["content"]["application/json"]["schema"]
        model = getattr(client_models, ref["$ref"].rsplit("/", 1)[1])
        parsed = model.model_validate(json.loads(body_of(event)))
        assert parsed.data.user_id in (str(person.id), person.id)
