"""GET /api/console/quote: the price the console page asks for as the form changes."""

from tests.factories import UserFactory


def test_quote_api_answers_price_or_422(client, auth, session):
    auth.login(UserFactory())
    ok = client.get("/api/console/quote?model=chat-pro&tier=standard&tokens=1500")
    assert ok.get_json()["amount"] == "0.03"
    bad = client.get("/api/console/quote?model=chat-pro&tokens=0")
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "invalid_request"
