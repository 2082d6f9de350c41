"""Alembic environment: migrations run against the app's database (DATABASE_URL or embedded)."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool

from ledger.config import load_settings
from ledger.db import make_engine, resolve_database_url
from ledger.models import Base
from ledger.migrations import described_by_models

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def run_migrations_online() -> None:
    # A caller (the tests, a CLI command) may hand over its own connection.
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        settings = load_settings()
        url = resolve_database_url(settings.DATABASE_URL, settings.INSTANCE_PATH)
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_name=described_by_models,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run against a database")
run_migrations_online()
