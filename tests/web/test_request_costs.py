"""Work a request does not need is not done: no cookie signer for a request without a cookie, and no
check of the answer against its schema in production (tests and development still check)."""

from dataclasses import replace

import flask

from ledger.blueprints import health
from ledger.web.auth import CookieSessions


def test_a_request_without_a_cookie_builds_no_signer(app, client, session, internal_headers, monkeypatch):
    def no_signer(*_):
        raise AssertionError("a signer was built for a request without a cookie")

    assert isinstance(app.session_interface, CookieSessions)
    monkeypatch.setattr(CookieSessions, "get_signing_serializer", no_signer)
    answer = client.post("/api/billing/deduct", json={}, headers=internal_headers)
    assert answer.status_code == 422  # got as far as reading the body, with no signer built
    assert "Set-Cookie" not in answer.headers


def test_a_signed_in_persons_cookie_is_still_read(client, me):
    answer = client.get("/api/billing/summary")
    assert (answer.status_code, answer.get_json()["email"]) == (200, me.email)


def test_answers_are_checked_against_their_schema_except_in_production(app, client, session, monkeypatch):
    monkeypatch.setattr(health, "jsonify", lambda **_: flask.jsonify(status="drifted"))  # not in Health's schema
    assert client.get("/healthz").status_code == 500  # tests and development: the drift is caught
    monkeypatch.setitem(app.config, "LEDGER", replace(app.config["LEDGER"], LEDGER_ENV="production"))
    answer = client.get("/healthz")
    assert (answer.status_code, answer.get_json()) == (200, {"status": "drifted"})
