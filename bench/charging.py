"""Benchmark: atomic charging (SELECT ... FOR UPDATE) under contention and through the API.

    .venv/bin/python bench/charging.py [--charges 2000] [--threads 16]

In one run, on a fresh database: (1) POST /api/billing/deduct one after the other through the whole
Flask stack (latency p50/p95, charges/s); (2) `charge_usage` from --threads threads, each with its
own connection, all on ONE account (the row lock serialises them); (3) the same on one account per
thread. Every run checks the final balance to the cent and `ledger verify`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fresh_database
from sqlalchemy import text

from ledger import create_app
from ledger.config import Settings
from ledger.db import Database, make_engine
from ledger.models import BillingAccount
from ledger.services.books.accounts import adjust_balance
from ledger.services.books.charges import charge_usage
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL, SYSTEM
from ledger.services.people.sign_in import register_user

KEY = "bench-internal-key"
PRICE = Decimal("0.0125")


def funded(database: Database, name: str, balance: Decimal):
    with database.session() as session:
        user = register_user(session, email=f"{name}@example.com", password="bench-password", ctx=SYSTEM)
        adjust_balance(session, user_id=user.id, amount=balance, memo="bench", ctx=SYSTEM)
    return user


def balance_of(database: Database, user) -> Decimal:
    with database.session() as session:
        return session.get(BillingAccount, user.id).balance


def api_sequential(app, database: Database, charges: int) -> tuple[float, float, float]:
    user = funded(database, f"api-{uuid.uuid4().hex[:8]}", PRICE * charges)
    client = app.test_client()
    times = []
    started = time.perf_counter()
    for i in range(charges):
        t = time.perf_counter()
        response = client.post(
            "/api/billing/deduct",
            headers={"x-internal-token": KEY},
            json={"user_id": str(user.id), "amount": str(PRICE), "model": "bench", "request_id": f"api-{i}"},
        )
        times.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)
    elapsed = time.perf_counter() - started
    assert balance_of(database, user) == 0
    return statistics.median(times), sorted(times)[int(0.95 * (len(times) - 1))], charges / elapsed


def threaded(database: Database, charges: int, threads: int, shared: bool) -> float:
    users = [funded(database, f"t{shared}-{n}", PRICE * charges) for n in range(1 if shared else threads)]
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        user = users[0 if shared else t]
        barrier.wait()
        with database.session() as session:
            for i in range(t, charges, threads) if shared else range(charges // threads):
                charge_usage(session, user_id=user.id, amount=PRICE, model="bench", request_id=f"{t}-{i}", ctx=INTERNAL)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    elapsed = time.perf_counter() - started
    done = charges if shared else (charges // threads) * threads
    spent = PRICE * done
    assert sum(balance_of(database, u) for u in users) == PRICE * charges * len(users) - spent
    return done / elapsed


def hourly_sums_cost(app, database: Database, rounds: int, charges: int) -> list[tuple[float, float]]:
    """A/B in one run: deduct latency (median of `charges`) with the usage_hourly trigger on, then off,
    `rounds` times in turn. The sums are rebuilt afterwards, so that the books still verify."""
    pairs = []
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for _ in range(rounds):
            medians = []
            for state in ("ENABLE", "DISABLE"):
                conn.execute(text(f"ALTER TABLE usage_logs {state} TRIGGER usage_logs_hourly"))
                medians.append(api_sequential(app, database, charges)[0])
            pairs.append((medians[0], medians[1]))
        conn.execute(text("ALTER TABLE usage_logs ENABLE TRIGGER usage_logs_hourly"))
        conn.execute(text("DELETE FROM usage_hourly"))
        conn.execute(
            text(
                "INSERT INTO usage_hourly (user_id, hour, model, count, amount) SELECT user_id, "
                "date_trunc('hour', created_at, 'UTC'), model, count(*), sum(amount) FROM usage_logs GROUP BY 1, 2, 3"
            )
        )
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charges", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    url = fresh_database("ledger_bench_charging")
    database = Database(make_engine(url, pool_size=args.threads + 4))
    settings = Settings(
        LEDGER_ENV="testing",
        DATABASE_URL=url,
        INTERNAL_API_KEY=KEY,
        INSTANCE_PATH=tempfile.mkdtemp(),
        RATELIMIT_ENABLED=False,
    )
    app = create_app(settings, database)

    p50, p95, api_rate = api_sequential(app, database, args.charges)
    one = threaded(database, args.charges, args.threads, shared=True)
    many = threaded(database, args.charges, args.threads, shared=False)
    ab = hourly_sums_cost(app, database, rounds=5, charges=300)
    with database.session() as session:
        breaches = list(find_breaches(session))
    assert breaches == [], breaches[:3]

    print(f"\n| measure ({args.charges:,} charges) | figure |")
    print("|---|---|")
    print(f"| POST /api/billing/deduct, one after the other | p50 {p50:.2f} ms, p95 {p95:.2f} ms, {api_rate:,.0f}/s |")
    print(f"| charge_usage, {args.threads} threads, one account | {one:,.0f} charges/s |")
    print(f"| charge_usage, {args.threads} threads, one account each | {many:,.0f} charges/s |")
    ratios = sorted(on / off for on, off in ab)
    print(
        f"| deduct p50 with / without the usage_hourly trigger (5 pairs of 300) | "
        f"{statistics.median(on for on, _ in ab):.2f} / {statistics.median(off for _, off in ab):.2f} ms, "
        f"ratio median {statistics.median(ratios):.3f} (min {ratios[0]:.3f}, max {ratios[-1]:.3f}) |"
    )
    print("\nfinal balances exact; ledger verify: no breach")


if __name__ == "__main__":
    main()
