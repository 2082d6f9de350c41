"""Benchmark: usage reports and CSV export with 1,000,000 usage rows for one person.

    .venv/bin/python bench/usage_report.py [--rows 1000000] [--noise 200000] [--calls 20]

Loads the rows into a fresh database (an embedded PostgreSQL in a temporary directory, or
BENCH_DATABASE_URL's server), then measures in one run, through the whole Flask stack (sign-in,
query, JSON or CSV): the JSON report for a 30-day range (p50/p95 over --calls calls), the same grouped
by model and for the longest range (366 days), and the CSV export of every row (rows/s and the growth
of the process's peak RSS while it streams).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fresh_database
from sqlalchemy import text

from ledger import create_app
from ledger.config import Settings
from ledger.db import Database, make_engine
from ledger.services.context import SYSTEM
from ledger.services.people.sign_in import register_user

SHANGHAI = ZoneInfo("Asia/Shanghai")
PASSWORD = "bench-password"


def load(database: Database, rows: int, noise: int) -> tuple[str, datetime]:
    """One person with `rows` charges over the last 365 days, and `noise` charges of 50 others."""
    with database.session() as session:
        me = register_user(session, email="bench@example.com", password=PASSWORD, ctx=SYSTEM)
        others = [
            register_user(session, email=f"noise{i}@example.com", password=PASSWORD, ctx=SYSTEM).id for i in range(50)
        ]
    now = datetime.now(UTC)
    insert = text("""
        INSERT INTO usage_logs (id, user_id, amount, model, params, request_id, balance_after, created_at)
        SELECT gen_random_uuid(), CAST(:user_id AS uuid),
               round((0.01 + random() * 2)::numeric, 4),
               (ARRAY['image-studio-v2', 'motion-video-1', 'chat-pro', 'chat-pro'])[1 + floor(random() * 4)::int],
               '{"images": 1, "resolution": "1024"}'::jsonb,
               :prefix || g, 100, :now - g * (:span / :rows) * interval '1 second'
        FROM generate_series(1, :rows) AS g
    """)
    year = 365 * 24 * 3600
    with database.engine.begin() as conn:
        conn.execute(insert, {"user_id": str(me.id), "prefix": "bench-", "now": now, "span": year, "rows": rows})
        for i, other in enumerate(others):
            conn.execute(
                insert,
                {"user_id": str(other), "prefix": f"noise{i}-", "now": now, "span": year, "rows": noise // len(others)},
            )
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE usage_logs"))
    return "bench@example.com", now


def signed_in_client(app, email):
    client = app.test_client()
    token = re.search(r'csrf-token" content="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.status_code
    return client


def timed_calls(client, path: str, calls: int) -> list[float]:
    client.get(path)  # warm-up: plan cache, connection pool, Jinja/JSON paths
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return times


def rss_mb() -> float:
    """The process's resident memory now, in MB (sampled while the CSV streams)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--noise", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()

    url = fresh_database("ledger_bench")
    database = Database(make_engine(url))
    started = time.perf_counter()
    email, now = load(database, args.rows, args.noise)
    print(
        f"loaded {args.rows:,} rows for one person + {args.noise:,} noise rows in "
        f"{time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )

    settings = Settings(
        LEDGER_ENV="testing", DATABASE_URL=url, SECRET_KEY=os.urandom(16).hex(), INSTANCE_PATH=tempfile.mkdtemp()
    )
    app = create_app(settings, database)
    client = signed_in_client(app, email)
    today = now.astimezone(SHANGHAI).date()
    month = f"from={today - timedelta(days=29)}&to={today}"
    year = f"from={today - timedelta(days=365)}&to={today}"

    results = []
    for label, path in [
        ("report JSON, 30 days, by day", f"/api/usage/report?{month}"),
        ("report JSON, 30 days, by model", f"/api/usage/report?{month}&group_by=model"),
        ("report JSON, 366 days, by day", f"/api/usage/report?{year}"),
        ("/usage page, 30 days", f"/usage?{month}"),
    ]:
        times = timed_calls(client, path, args.calls)
        results.append((label, statistics.median(times), percentile(times, 95)))

    rss_before = peak = rss_mb()
    started = time.perf_counter()
    response = client.get(f"/api/usage/report?format=csv&{year}", buffered=False)
    lines = 0
    for chunk in response.response:  # consumed as a client would, chunk by chunk
        lines += chunk.count(b"\n")
        peak = max(peak, rss_mb())
    elapsed = time.perf_counter() - started
    rss_growth = peak - rss_before
    exported = lines - 1  # the header

    print(f"\n| measure ({args.rows:,} rows for one person, {args.noise:,} noise) | p50 | p95 |")
    print("|---|---|---|")
    for label, p50, p95 in results:
        print(f"| {label} | {p50:.1f} ms | {p95:.1f} ms |")
    print(
        f"\nCSV export: {exported:,} rows in {elapsed:.2f} s = {exported / elapsed:,.0f} rows/s; "
        f"peak RSS growth while streaming: {rss_growth:.1f} MB"
    )
    assert exported == args.rows, f"exported {exported} rows, expected {args.rows}"


if __name__ == "__main__":
    main()
