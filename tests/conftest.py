"""Fixtures: a real PostgreSQL per test worker, one rolled-back transaction per test.

Without TEST_DATABASE_URL each xdist worker starts an embedded PostgreSQL in a temporary
directory; with it, each worker creates its own database on that server. The schema is built by
Alembic, as in production.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from dotenv import dotenv_values
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from ledger import create_app
from ledger.config import Settings
from ledger.db import Database, embedded_postgres_url, make_engine
from ledger.migrations import fresh_database
from ledger.models import Base
from ledger.services.context import Context
from tests import factories
from tests.factories import FAST_PASSWORD_HASH, UserFactory
from tests.helpers import INTERNAL_KEY, XORPAY_AID, XORPAY_SECRET, AuthActions, FakeXorPay

ROOT = Path(__file__).resolve().parent.parent


# The task queue's tables (procrastinate): emptied with ours after tests that commit.
QUEUE_TABLES = ("procrastinate_jobs", "procrastinate_events", "procrastinate_periodic_defers", "procrastinate_workers")


# The tests that start first, the longest first (seconds on 2 cores), so that the workers end together:
# `make test` hands out one test at a time, to whichever worker is free (--dist load --maxschedchunk 1).
# The browser tests come first and together: a worker opens one browser for all of them.
FIRST = (
    "tests/e2e/test_accessibility.py",  # 2 tests of ~15 s
    "tests/e2e/test_keyboard.py",  # 2 of ~15 s
    "tests/e2e/test_back_office.py",  # 2 of ~10 s
    "tests/e2e/",  # 34 of 2-7 s
    "tests/web/test_schemathesis.py",  # ~15 s
    "tests/books/test_holds_properties.py",  # ~10 s
    "tests/web/test_metrics.py",  # starts gunicorn
    "tests/test_database_outage.py",  # stops and starts a PostgreSQL
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(FIRST) if item.nodeid.startswith(prefix)), len(FIRST))

    items.sort(key=rank)  # stable: the others keep their order


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    # The environment wins over .env, as for the app's own settings.
    base = os.environ.get("TEST_DATABASE_URL") or dotenv_values(ROOT / ".env").get("TEST_DATABASE_URL")
    if not base:
        base = embedded_postgres_url(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    return fresh_database(base, f"ledger_test_{worker}")


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=60, max_overflow=10)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        LEDGER_ENV="testing",
        SECRET_KEY="test-secret-key",
        DATABASE_URL=database_url,
        INTERNAL_API_KEY=INTERNAL_KEY,
        SITE_URL="http://ledger.test",
        XORPAY_AID=XORPAY_AID,
        XORPAY_APP_SECRET=XORPAY_SECRET,
        XORPAY_NOTIFY_URL="http://ledger.test/api/payments/webhook",
        XORPAY_API_BASE="http://127.0.0.1:9/unused",  # tests point the client at a fake XorPay
        # Tests sign in many times a minute; test_security tightens the limits to check them.
        RATELIMIT_LOGIN="10000/minute",
        RATELIMIT_REGISTER="10000/minute",
        RATELIMIT_TOPUP="10000/minute",
        RATELIMIT_TOPUP_CHECK="10000/minute",
        INSTANCE_PATH=str(tmp_path_factory.mktemp("instance")),
        PASSWORD_HASH=FAST_PASSWORD_HASH,  # sign-ins by the hundred; scrypt has tests of its own
    )


@pytest.fixture(scope="session")
def database(engine: Engine) -> Database:
    return Database(engine)


@pytest.fixture(scope="session")
def app(settings: Settings, database: Database) -> Flask:
    return create_app(settings, database)


@dataclass
class LiveServer:
    url: str
    app: Flask


@pytest.fixture(scope="session")
def live_server(settings: Settings, database: Database) -> Iterator[LiveServer]:
    """The app served over real HTTP on a free port, with the XorPay sandbox on, as `make run` has it.

    The app calls its own sandbox over HTTP and the sandbox notifies the app's webhook over HTTP.
    Rows are committed: tests using it take the `committed` fixture.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    live_settings = replace(
        settings,
        SITE_URL=url,
        XORPAY_SANDBOX=True,
        XORPAY_API_BASE=f"{url}/sandbox/xorpay",
        XORPAY_NOTIFY_URL=f"{url}/api/payments/webhook",
    )
    live_app = create_app(live_settings, database)
    server = make_server("127.0.0.1", port, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveServer(url, live_app)
    server.shutdown()


@pytest.fixture
def connection(engine: Engine) -> Iterator:
    """One connection in a transaction that is rolled back after the test: nothing persists."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def session(connection, database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    """The test's session; the app's request sessions join the same rolled-back transaction."""

    def factory() -> Session:
        return Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)

    monkeypatch.setattr(database, "session_factory", factory)
    session = factory()
    factories.bind(session)
    yield session
    session.close()
    factories.bind(None)


@pytest.fixture
def committed(engine: Engine, database: Database) -> Iterator[Database]:
    """For tests across real connections and threads: rows are committed, tables emptied after."""
    factories.bind(None)
    yield database
    with engine.begin() as conn:
        tables = ", ".join([*(t.name for t in Base.metadata.sorted_tables), *QUEUE_TABLES])
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def client(app: Flask, session: Session) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def internal_headers() -> dict[str, str]:
    return {"x-internal-token": INTERNAL_KEY}


@pytest.fixture
def me(client: FlaskClient, auth: AuthActions, session: Session):
    """A person, signed in with `client`."""
    user = factories.UserFactory()
    auth.login(user)
    return user


@pytest.fixture
def admin_user(auth: AuthActions, session: Session):
    """An admin, signed in with `client`."""
    user = factories.UserFactory(is_admin=True)
    auth.login(user)
    return user


@pytest.fixture
def admin(session: Session) -> Context:
    """An admin's context in service calls, of an admin who exists (not signed in)."""
    return Context("admin").as_admin(UserFactory(is_admin=True).id)


@pytest.fixture
def xorpay(app: Flask, httpserver, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeXorPay]:
    """XorPay answered by a local HTTP server (pytest-httpserver), used by the app for this test."""
    fake = FakeXorPay(httpserver)
    monkeypatch.setitem(app.extensions, "ledger.xorpay", fake.client)
    yield fake
    fake.settle()
