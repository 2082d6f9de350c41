"""schemathesis over every operation of /api/openapi.json (SPEC 18), in-process against the WSGI app,
as a service of the SaaS (x-internal-token) and as a signed-in person (session cookie and CSRF
token) at once: no 5xx, no status or body outside the document, whatever the generated input."""

import json
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug import Response

from tests.factories import UserFactory
from tests.helpers import INTERNAL_KEY, XORPAY_AID, AuthActions

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


@pytest.fixture
def gateway(xorpay):
    """XorPay says yes to every top-up, each with an order id of its own."""

    def created(_request):
        body = {
            "status": "ok",
            "aoid": uuid.uuid4().hex,
            "expires_in": "1800",
            "info": {"qr": "https://qr.alipay.com/x"},
        }
        return Response(json.dumps(body), content_type="application/json")

    xorpay.server.expect_request(f"/api/pay/{XORPAY_AID}", method="POST").respond_with_handler(created)
    return xorpay


@pytest.fixture
def credentials(app, session) -> dict[str, dict[str, str]]:
    """Both kinds of caller in one set of headers: the internal token, and a person's session."""
    client = app.test_client()
    auth = AuthActions(client)
    auth.login(UserFactory(balance="50.00"))
    token = auth.csrf_token("/")
    cookie = client.get_cookie("session")
    assert cookie is not None
    return {"headers": {"x-internal-token": INTERNAL_KEY, "X-CSRFToken": token}, "cookies": {"session": cookie.value}}


def test_the_api_keeps_its_document(api_schema, credentials, gateway):
    # Each operation in turn with hypothesis (schemathesis's own pytest plugin needs pytest internals
    # this pytest no longer has).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 15
    for operation in operations:

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy())
        def keeps_to_it(case):
            case.call_and_validate(**credentials, checks=CHECKS)

        keeps_to_it()
