"""What the benchmarks share: a fresh database with the schema, made by Alembic."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from ledger.db import embedded_postgres_url, make_engine, normalise_url  # noqa: E402


def fresh_database(name: str) -> str:
    """A new database `name` at the latest revision: on BENCH_DATABASE_URL's server, or an embedded
    PostgreSQL in a temporary directory (deleted at exit)."""
    base = os.environ.get("BENCH_DATABASE_URL")
    if not base:
        base = embedded_postgres_url(Path(tempfile.mkdtemp(prefix="ledger-bench-")) / "pg", cleanup_mode="delete")
    base = normalise_url(base)
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    with engine.begin() as conn:
        config = Config(str(ROOT / "alembic.ini"))
        config.attributes.update(connection=conn, configure_logger=False)
        command.upgrade(config, "head")
    engine.dispose()
    return url
