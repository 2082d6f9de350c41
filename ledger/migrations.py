"""The schema is Alembic's: its configuration, and fresh databases at the newest revision
(for the test suite and the benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ledger.db import make_engine, normalise_url

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def described_by_models(name: str | None, type_: str, parent_names: Any) -> bool:
    """Objects that ledger.models describes; the task queue's own tables (procrastinate_*),
    created by a migration from procrastinate's schema, are left out of comparisons."""
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


def alembic_config(connection: Any = None) -> Config:
    """Alembic's configuration; with `connection`, migrations run on it (inside its transaction)."""
    config = Config(str(ALEMBIC_INI))
    config.attributes["configure_logger"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def fresh_database(server_url: str, name: str) -> str:
    """Drop and create database `name` on `server_url`'s server, migrate it to head; return its URL."""
    server_url = normalise_url(server_url)
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    engine.dispose()
    return url
