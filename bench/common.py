"""What the benchmarks share: a fresh database at the newest revision."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.db import embedded_postgres_url
from ledger.migrations import fresh_database as _fresh_database


def fresh_database(name: str) -> str:
    """A new database `name`: on BENCH_DATABASE_URL's server, or an embedded PostgreSQL in a
    temporary directory (deleted at exit)."""
    server = os.environ.get("BENCH_DATABASE_URL") or embedded_postgres_url(
        Path(tempfile.mkdtemp(prefix="ledger-bench-")) / "pg", cleanup_mode="delete"
    )
    return _fresh_database(server, name)
