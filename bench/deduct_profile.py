"""Where a deduct's time goes, by library: cProfile of 1,000 sequential POST /api/billing/deduct
through the whole Flask stack (after 200 to warm up). Shares of total time, so that a noisy machine
still gives comparable figures (bench/README.md).

    .venv/bin/python bench/deduct_profile.py
"""

import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import charging
from common import fresh_database

from ledger import create_app
from ledger.config import Settings
from ledger.db import Database, make_engine

url = fresh_database("ledger_bench_specprof")
database = Database(make_engine(url, pool_size=4))
settings = Settings(
    LEDGER_ENV="testing",
    DATABASE_URL=url,
    INTERNAL_API_KEY=charging.KEY,
    INSTANCE_PATH=tempfile.mkdtemp(),
    RATELIMIT_ENABLED=False,
)
app = create_app(settings, database)
charging.api_sequential(app, database, 200)  # warm up
prof = cProfile.Profile()
prof.enable()
p50, p95, rate = charging.api_sequential(app, database, 1000)
prof.disable()
stats = pstats.Stats(prof)
total = sum(v[2] for v in stats.stats.values())  # tottime over all functions


def share(word: str) -> float:
    return sum(v[2] for k, v in stats.stats.items() if word in k[0]) / total


print(f"p50 {p50:.2f} ms (under the profiler), {rate:.0f}/s")
for word in (
    "spectree",
    "pydantic",
    "flask_limiter",
    "flask_login",
    "werkzeug",
    "flask/",
    "sqlalchemy",
    "psycopg",
    "ledger/",
):
    print(f"{word:15s} {share(word) * 100:5.1f} % of tottime")
