"""Request ids and request logs (SPEC 18): the id is kept or made, echoed, written on the audit
rows the request causes, and on its one JSON log line."""

import json
import logging

import pytest
from sqlalchemy import select

from ledger.logs import JsonFormatter
from ledger.models import AuditLog
from tests.factories import UserFactory

DEDUCT = "/api/billing/deduct"


def charge(user, request_id="r1", amount="1.00"):
    return {"user_id": str(user.id), "amount": amount, "model": "image-studio-v2", "request_id": request_id}


def audit_rows(session, user, action):
    return session.scalars(select(AuditLog).where(AuditLog.user_id == user.id, AuditLog.action == action)).all()


def test_a_well_formed_request_id_is_kept_echoed_and_on_the_audit_row(client, session, internal_headers):
    alice = UserFactory(balance="5.00")
    response = client.post(DEDUCT, json=charge(alice), headers={**internal_headers, "X-Request-ID": "saas-job.42_a"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "saas-job.42_a"
    assert [row.request_id for row in audit_rows(session, alice, "usage.charged")] == ["saas-job.42_a"]


@pytest.mark.parametrize("given", [None, "", "has space", "semi;colon", "ü", "x" * 129])
def test_otherwise_a_new_id_is_made(client, given):
    headers = {"X-Request-ID": given} if given is not None else {}
    response = client.get("/healthz", headers=headers)
    made = response.headers["X-Request-ID"]
    assert made != given and len(made) == 32 and int(made, 16) >= 0


def test_each_request_gets_its_own_id(client):
    assert client.get("/healthz").headers["X-Request-ID"] != client.get("/healthz").headers["X-Request-ID"]


def test_a_refusal_and_a_batch_carry_the_request_id_too(client, session, internal_headers):
    alice = UserFactory(balance="1.00")
    headers = {**internal_headers, "X-Request-ID": "short-1"}
    assert client.post(DEDUCT, json=charge(alice, "big", "2.00"), headers=headers).status_code == 402
    headers["X-Request-ID"] = "batch-7"
    charges = [charge(alice, "b1", "0.25"), charge(alice, "b2", "0.25")]
    assert client.post(f"{DEDUCT}/batch", json={"charges": charges}, headers=headers).status_code == 200
    assert [r.request_id for r in audit_rows(session, alice, "usage.insufficient_balance")] == ["short-1"]
    assert [r.request_id for r in audit_rows(session, alice, "usage.charged")] == ["batch-7", "batch-7"]


def test_a_page_action_writes_its_request_id_on_the_orm_audit_row(client, session, auth):
    alice = UserFactory()
    token = auth.csrf_token()
    form = {"email": alice.email, "password": "wrong-password", "csrf_token": token}
    client.post("/login", data=form, headers={"X-Request-ID": "login-try-1"})
    assert [row.request_id for row in audit_rows(session, alice, "auth.login_failed")] == ["login-try-1"]


def test_one_json_log_line_a_request_says_who_route_status_and_duration(client, me, internal_headers, caplog):
    alice = UserFactory(balance="5.00")
    with caplog.at_level(logging.INFO, logger="ledger.requests"):
        client.post(DEDUCT, json=charge(alice), headers={**internal_headers, "X-Request-ID": "line-1"})
        client.get("/usage?from=bad", headers={"X-Request-ID": "line-2"})
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "ledger.requests"]
    assert [(ln["request_id"], ln["method"], ln["route"], ln["status"], ln["who"]) for ln in lines] == [
        ("line-1", "POST", "/api/billing/deduct", 200, "internal"),
        ("line-2", "GET", "/usage", 422, str(me.id)),
    ]
    assert all(ln["duration_ms"] >= 0 and ln["level"] == "info" and ln["message"] == "request" for ln in lines)
