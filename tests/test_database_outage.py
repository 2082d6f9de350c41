"""PostgreSQL stopped under a running app (SPEC 18): requests answer 503 database_unavailable, not
500, and the app recovers by itself when the database is back (no restart, no ping per request)."""

from dataclasses import replace
from decimal import Decimal

from ledger import create_app
from ledger.db import Database, load_pgserver, make_engine
from ledger.migrations import fresh_database
from ledger.models import BillingAccount
from ledger.services.books.accounts import adjust_balance
from ledger.services.books.invariants import find_breaches
from ledger.services.context import SYSTEM
from ledger.services.people.sign_in import register_user
from tests.helpers import INTERNAL_KEY


def test_a_stopped_database_answers_503_and_the_app_recovers_when_it_is_back(settings, tmp_path):
    server = load_pgserver().get_server(tmp_path / "pg", cleanup_mode="delete")  # a server of our own to stop
    url = fresh_database(f"postgresql+psycopg://postgres@/postgres?host={tmp_path / 'pg'}", "outage")
    database = Database(make_engine(url))
    app = create_app(replace(settings, DATABASE_URL=url), database)
    with database.session() as session:
        user = register_user(session, email="a@example.com", password="p" * 10, ctx=SYSTEM)
        adjust_balance(session, user_id=user.id, amount=Decimal("10.00"), memo="test", ctx=SYSTEM)
    client = app.test_client()

    def deduct(request_id):
        body = {"user_id": str(user.id), "amount": "1.00", "model": "m", "request_id": request_id}
        return client.post("/api/billing/deduct", json=body, headers={"x-internal-token": INTERNAL_KEY})

    assert deduct("before").status_code == 200
    server.stop()
    down = deduct("during")
    assert (down.status_code, down.get_json()["error"]["code"]) == (503, "database_unavailable")
    assert down.headers["Retry-After"] == "1"
    assert client.get("/healthz").status_code == 503
    assert client.get("/login").status_code == 200  # a page without the database still answers

    server.start()
    assert deduct("after").status_code == 200  # the pool replaced its dead connection
    assert client.get("/healthz").status_code == 200

    server.stop()  # a restart between two requests: the pooled connection is dead, nobody has noticed
    server.start()
    assert deduct("after a restart").status_code == 200  # the charge is retried once on a fresh connection
    with database.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("7.0000")
        assert list(find_breaches(session)) == []
    database.engine.dispose()
