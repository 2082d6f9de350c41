"""Benchmark: one charge side by side, from PostgreSQL's own client to HTTP, in one run.

    make bench-charge                                    # = .venv/bin/python bench/charge_compare.py
    .venv/bin/python bench/charge_compare.py --duration 5 --parts ad

On one fresh database (an embedded PostgreSQL 18 in a temporary directory, or BENCH_DATABASE_URL's
server), seeded in bulk with 10,000 funded accounts plus one hot account, the same charge is sent by:

  (a) pgbench running bench/charge.pgbench: the statements `charge_usage` sends, in one transaction
  (b) plain psycopg 3 threads sending the same statements (read from the same file), a connection each
  (c) `ledger.services.books.accounts.charge_usage` in-process from threads, a session each
  (c') the same as (c) for people with spending limits (SPEC 22): before the part every account
      gets a daily and a monthly `person` limit of 1,000,000.00 (never reached), removed after it;
      printed with its ratio to the (c) of the same round
  (d) HTTP POST /api/billing/deduct under `gunicorn -c gunicorn.conf.py 'wsgi:app'`, driven by wrk
      (bench/deduct.lua)
  (d') the same under granian, started as `make serve` starts it (`python -m ledger.serve`, HOST
      and PORT in the environment)
  (e) HTTP POST /api/billing/deduct/batch, 100 charges a call, 16 connections ("not available"
      while the route answers 404)
  (f) the same as (d') (granian) for people with spending limits, as (c') sets them; printed with
      its ratio to the (d') of the same round

each for --duration seconds with 1 and 16 clients, on accounts picked at random among the 10,000
and on the one hot account (--shapes picks some). --parts runs them in the order given, a part
again when repeated (`--parts "ad'dad'd"`: two rounds, the servers alternating), each HTTP part on
a server of its own, warmed up for 2 s first. It prints charges/s, p50 and p99 latency and the
ratio to (a) of the same round for the same clients and accounts, and after every part checks the
books: `ledger verify` finds nothing and the balances total the starting total minus the usage
logs' amounts, to the cent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from common import (
    AMOUNT,
    GUNICORN,
    SERVE,
    Server,
    check_books,
    fresh_database,
    http_server,
    post,
    say,
    seed,
    user_id,
)
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ledger.db import Database, load_pgserver, make_engine
from ledger.services.context import INTERNAL

try:  # issue 12 moves the single charge to ledger.services.books.charges
    from ledger.services.books.charges import charge_usage
except ImportError:
    from ledger.services.books.accounts import charge_usage

BENCH = Path(__file__).resolve().parent
SCRIPT = BENCH / "charge.pgbench"  # the charge's statements: the one place (a) and (b) read them
LUA = BENCH / "deduct.lua"
BATCH = 100
CORES = os.cpu_count() or 1
SPREAD, HOT = "spread", "hot"
SHAPES = {"1-spread": (1, SPREAD), "16-spread": (16, SPREAD), "1-hot": (1, HOT), "16-hot": (16, HOT)}
PARTS = {
    "a": "(a) pgbench, bench/charge.pgbench (-M prepared)",
    "b": "(b) psycopg 3 threads, the same statements",
    "c": "(c) charge_usage in-process, a session per thread",
    "c'": "(c') charge_usage in-process, people with a daily and a monthly limit",
    "d": "(d) HTTP POST /api/billing/deduct, gunicorn + wrk",
    "d'": "(d') HTTP POST /api/billing/deduct, granian (make serve) + wrk",
    "e": f"(e) HTTP POST /api/billing/deduct/batch, {BATCH} a call (latency a call)",
    "f": "(f) HTTP POST /api/billing/deduct, granian + wrk, people with a daily and a monthly limit",
}
LIMITED = {"c'": "c", "f": "d'"}  # a part for people with limits, and the part without it compares to
LIMIT = "1000000.00"  # each limit of (c') and (f): the most SPEC 22 allows, never reached here


@dataclass
class Result:
    part: str
    clients: int
    accounts: str
    tps: float | None
    p50: float | None = None  # ms
    p99: float | None = None
    note: str = ""


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


# --- the database -------------------------------------------------------------------------------


def charged(database: Database, model: str) -> int:
    with database.engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM usage_logs WHERE model = :m"), {"m": model})


def set_limits(database: Database, on: bool) -> None:
    """Every account gets a daily and a monthly `person` limit of LIMIT (on), or none (off); the
    table is analyzed again, so the prepared lock statement's plans are made anew."""
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM spending_limits"))
        if on:
            conn.execute(
                text(
                    "INSERT INTO spending_limits (user_id, period, amount, set_by) "
                    "SELECT user_id, period, :amount, 'person' FROM billing_accounts "
                    "CROSS JOIN (VALUES ('day'), ('month')) AS periods (period)"
                ),
                {"amount": LIMIT},
            )
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE spending_limits"))


def libpq_params(url: str) -> dict[str, str]:
    """The URL's connection parameters as libpq names them (host may be a socket directory)."""
    u = make_url(url)
    params = {"host": u.query.get("host") or u.host, "port": u.port, "user": u.username}
    params |= {"password": u.password, "dbname": u.database}
    return {k: str(v) for k, v in params.items() if v}


# --- (a) pgbench and (b) psycopg: the statements of bench/charge.pgbench ---------------------------


@dataclass
class Statement:
    sql: str  # with psycopg placeholders, %(name)s
    gset: bool  # keep the returned row's columns as variables (pgbench \gset)


@dataclass
class ChargeScript:
    statements: list[Statement] = field(default_factory=list)
    randoms: dict[str, tuple[str, str]] = field(default_factory=dict)  # \set name random(lo, hi)


def load_charge_script(path: Path = SCRIPT) -> ChargeScript:
    """bench/charge.pgbench as psycopg runs it: `\\set x random(a, b)`, statements ending in `;` or
    `\\gset`, `:name` variables (not `::type` casts). Nothing else of pgbench's language is used."""
    script, lines = ChargeScript(), []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("--"):
            continue
        if line.startswith("\\set"):
            m = re.fullmatch(r"\\set\s+(\w+)\s+random\(\s*(\S+)\s*,\s*(\S+)\s*\)", line)
            if not m:
                raise ValueError(f"{path.name}: only `\\set name random(a, b)` is understood, not {line!r}")
            script.randoms[m[1]] = (m[2], m[3])
            continue
        gset = line.endswith("\\gset")
        lines.append(line.removesuffix("\\gset").strip())
        if gset or line.endswith(";"):
            sql = " ".join(lines).rstrip(";").replace("%", "%%")
            script.statements.append(Statement(re.sub(r"(?<!:):([A-Za-z_]\w*)", r"%(\1)s", sql), gset))
            lines = []
    if lines:
        raise ValueError(f"{path.name}: the last statement has no `;`")
    return script


def pgbench_binary() -> str:
    """The pgbench of the embedded PostgreSQL's binaries, else the one on PATH."""
    try:
        utils = load_pgserver().utils
        bundled = utils.POSTGRES_VERSIONS[utils.TARGET_POSTGRES_VERSION] / "pgbench"
        if bundled.is_file():
            return str(bundled)
    except (ImportError, AttributeError, KeyError):
        pass
    found = shutil.which("pgbench")
    if not found:
        raise SystemExit("no pgbench: install postgresql-client, or the embedded PostgreSQL (make install)")
    return found


def run_pgbench(url: str, clients: int, lo: int, hi: int, duration: int, model: str) -> Result:
    logs = Path(tempfile.mkdtemp(prefix="ledger-pgbench-"))
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE"}
    env = os.environ | {names[k]: v for k, v in libpq_params(url).items()}
    variables = {"lo": lo, "hi": hi, "amount": AMOUNT, "model": model}
    command = [pgbench_binary(), "-n", "-M", "prepared", "-T", str(duration), "-c", str(clients)]
    command += ["-j", str(min(clients, CORES)), "-f", str(SCRIPT), "--log", f"--log-prefix={logs}/tx"]
    command += [f"-D{k}={v}" for k, v in variables.items()]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    tps = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", done.stdout, re.M)
    failed = re.search(r"^number of failed transactions: (\d+)", done.stdout, re.M)
    if done.returncode or not tps or "aborted" in done.stderr:
        raise SystemExit(f"pgbench failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    latencies = [int(line.split()[2]) / 1000 for log in logs.iterdir() for line in log.open()]
    shutil.rmtree(logs, ignore_errors=True)
    note = f"{failed[1]} failed" if failed and failed[1] != "0" else ""
    return Result("a", clients, "", float(tps[1]), percentile(latencies, 50), percentile(latencies, 99), note)


# --- threads: (b) and (c) -----------------------------------------------------------------------

Worker = tuple[Callable[[], None], Callable[[], None]]  # one charge; closing


def run_threads(clients: int, duration: int, make_worker: Callable[[int], Worker], part: str) -> Result:
    """`clients` threads, each with its own connection (made before the clock starts), charging
    until `duration` is up. Counts the charges finished in time; latencies of all."""
    barrier = threading.Barrier(clients + 1, timeout=120)
    stop = threading.Event()
    finished: list[list[float]] = [[] for _ in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        try:
            charge, close = make_worker(i)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
            return
        try:
            barrier.wait()
            clock, ends, took = time.perf_counter, finished[i], latencies[i]
            while not stop.is_set():
                began = clock()
                charge()
                end = clock()
                ends.append(end)
                took.append(end - began)
        except BaseException as exc:
            errors.append(exc)
            stop.set()
        finally:
            close()

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        stop.set()
    started = time.perf_counter()
    stop.wait(duration)
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    deadline = started + duration
    count = sum(1 for ends in finished for end in ends if end <= deadline)
    ms = [s * 1000 for took in latencies for s in took]
    return Result(part, clients, "", count / duration, percentile(ms, 50), percentile(ms, 99))


def psycopg_worker(url: str, lo: int, hi: int, model: str) -> Callable[[int], Worker]:
    script, params = load_charge_script(), libpq_params(url)

    def make(_: int) -> Worker:
        conn = psycopg.connect(**params, autocommit=True)  # BEGIN and COMMIT are in the script
        cursor, rng = conn.cursor(), random.Random()
        variables: dict[str, object] = {"lo": lo, "hi": hi, "amount": AMOUNT, "model": model}

        def bound(value: str) -> int:
            return int(variables[value[1:]]) if value.startswith(":") else int(value)  # type: ignore[call-overload]

        def charge() -> None:
            for name, (a, b) in script.randoms.items():
                variables[name] = rng.randint(bound(a), bound(b))
            for statement in script.statements:
                cursor.execute(statement.sql, variables)
                if statement.gset:  # pgbench's \\gset: the row's columns become variables
                    row = cursor.fetchone()
                    if row is None or cursor.description is None:
                        raise RuntimeError(f"no row for \\gset from: {statement.sql[:80]}")
                    variables.update(zip([c.name for c in cursor.description], row, strict=True))

        return charge, conn.close

    return make


def service_worker(database: Database, ids: list[str], model: str) -> Callable[[int], Worker]:
    def make(_: int) -> Worker:
        session, rng = database.session_factory(), random.Random()

        def charge() -> None:
            charge_usage(
                session,
                user_id=rng.choice(ids),
                amount=str(AMOUNT),
                model=model,
                request_id=uuid.uuid4().hex,
                ctx=INTERNAL,
            )

        return charge, session.close

    return make


# --- (d), (d') and (e): gunicorn or granian, and wrk ----------------------------------------------


def run_wrk(server: Server, connections: int, duration: int, ids_file: Path, model: str, batch: int = 0) -> Result:
    command = ["wrk", "-t", str(min(connections, CORES)), "-c", str(connections), "-d", f"{duration}s"]
    command += ["--timeout", "10s", "-s", str(LUA), server.base, "--", str(ids_file), model, server.token, str(batch)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    found = re.search(r"^WRK (\{.*\})$", done.stdout, re.M)
    if done.returncode or not found:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    figures = json.loads(found[1])
    ok = figures["requests"] - figures["non_2xx"]
    notes = []
    if figures["non_2xx"]:
        notes.append(f"{figures['non_2xx']:,} answers not 2xx")
    if figures["socket_errors"]:
        notes.append(f"{figures['socket_errors']:,} socket errors")
    return Result(
        "e" if batch else "d",
        connections,
        "",
        ok * max(batch, 1) / (figures["duration_us"] / 1e6),
        figures["p50_us"] / 1000,
        figures["p99_us"] / 1000,
        "; ".join(notes),
    )


def ensure_wrk() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: `make bench-charge` installs Debian's wrk (apt-get install wrk)")


def run_batches(
    server: Server,
    duration: int,
    ids_file: Path,
    database: Database,
    tag: str,
    measured: Callable[[Result, str], None],
    label: str,
) -> bool:
    """(e): False when the batch route is not there (answers 404)."""
    if post(server.base, "/api/billing/deduct/batch", server.token, {"charges": []}) == 404:
        measured(Result("e", 16, "", None, note="not available (the route answers 404)"), label)
        return False
    model = f"{tag}-16-{SPREAD}"
    result = run_wrk(server, 16, duration, ids_file, model, batch=BATCH)
    if charged(database, model) < result.tps * duration * 0.99:
        result.note = "; ".join(filter(None, [result.note, "fewer usage logs than items answered"]))
    measured(result, label)
    return True


# --- the run ------------------------------------------------------------------------------------


def print_table(results: list[Result]) -> None:
    """Each ratio is to the (a) of its round: the last (a) run before it, else the first."""
    baseline = {(r.clients, r.accounts): r.tps for r in reversed(results) if r.part == "a"}

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} ms"

    print("\n| part | clients | accounts | charges/s | p50 | p99 | vs (a) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if r.part == "a":
            baseline[r.clients, r.accounts] = r.tps
        base = baseline.get((r.clients, r.accounts))
        if r.tps is None:
            figures = f"{r.note} | - | - | -"
        else:
            ratio = f"{r.tps / base:.0%}" if base else "-"
            figures = f"{r.tps:,.0f} | {ms(r.p50)} | {ms(r.p99)} | {ratio}"
            if r.note:
                figures += f" ({r.note})"
        print(f"| {PARTS[r.part]} | {r.clients} | {r.accounts} | {figures} |")
    print_limits(results)


def print_limits(results: list[Result]) -> None:
    """For each part of people with limits: its rate over the same part without limits of its round
    (the last one run before it, else the first), per clients and accounts; then their medians."""
    ratios: dict[tuple[str, int, str], list[float]] = {}
    for i, r in enumerate(results):
        if r.part not in LIMITED or r.tps is None:
            continue
        plain = LIMITED[r.part]
        same = [p for p in results if p.part == plain and (p.clients, p.accounts) == (r.clients, r.accounts)]
        before = [p for p in results[:i] if p in same]
        base = before[-1] if before else (same[0] if same else None)
        if base is None or not base.tps:
            continue
        ratios.setdefault((r.part, r.clients, r.accounts), []).append(r.tps / base.tps)
        print(
            f"limits: ({r.part}) / ({plain}) = {r.tps / base.tps:.2f}, {r.clients} clients, {r.accounts} accounts "
            f"({r.tps:,.0f} / {base.tps:,.0f} charges/s)"
        )
    for (part, clients, accounts), values in ratios.items():
        print(
            f"limits, median of {len(values)}: ({part}) / ({LIMITED[part]}) = {statistics.median(values):.2f}, "
            f"{clients} clients, {accounts} accounts ({', '.join(f'{v:.2f}' for v in values)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument(
        "--parts",
        default="abcdd'e",
        help="which parts to run, in this order, e.g. ad or \"ad'dad'd\" (default abcdd'e)",
    )
    parser.add_argument(
        "--shapes",
        default=",".join(SHAPES),
        help=f"clients and accounts of (a)-(d'), e.g. 16-spread (default {','.join(SHAPES)})",
    )
    args = parser.parse_args()
    parts = re.findall(r"[a-f]'?", args.parts)
    if "".join(parts) != args.parts or set(parts) - set(PARTS):
        parser.error(f"--parts: letters a to f, c' and d' for (c') and (d'), not {args.parts!r}")
    wanted = args.shapes.split(",")
    if set(wanted) - set(SHAPES):
        parser.error(f"--shapes: some of {','.join(SHAPES)}, not {args.shapes!r}")
    if {"d", "d'", "e", "f"} & set(parts):
        ensure_wrk()
    began, load_before = time.perf_counter(), os.getloadavg()[0]

    url = fresh_database("ledger_bench_charge")
    database = Database(make_engine(url, pool_size=20))
    start_total = seed(database, args.accounts)
    with database.engine.connect() as conn:
        version = conn.scalar(text("SHOW server_version"))
        commit = conn.scalar(text("SHOW synchronous_commit"))
    say(f"seeded {args.accounts:,} accounts + 1 hot; {check_books(database, start_total)}")
    spread = (1, args.accounts, [user_id(n) for n in range(1, args.accounts + 1)])
    hot = (0, 0, [user_id(0)])
    shapes = [(c, shape, spread if shape == SPREAD else hot) for c, shape in (SHAPES[w] for w in SHAPES if w in wanted)]
    label = {SPREAD: f"{args.accounts:,}", HOT: "1 (hot)"}
    results: list[Result] = []
    books: list[str] = []
    servers: dict[str, str] = {}
    files = Path(tempfile.mkdtemp(prefix="ledger-wrk-"))
    (files / SPREAD).write_text("\n".join(spread[2]) + "\n")
    (files / HOT).write_text("\n".join(hot[2]) + "\n")

    def measured(result: Result, accounts: str) -> None:
        result.accounts = accounts
        results.append(result)
        figures = "-"
        if result.tps is not None:
            figures = f"{result.tps:,.0f}/s, p50 {result.p50:.2f} ms, p99 {result.p99:.2f} ms"
        say(f"{PARTS[result.part]}, {result.clients} clients, {accounts} accounts: {figures} {result.note}")

    def checked(part: str) -> None:
        line = f"after {part}: {check_books(database, start_total)}"
        books.append(line)
        say(line)

    round_of: Counter[str] = Counter()
    for part in parts:
        round_of[part] += 1
        # the charges' model (and in HTTP their request ids): a round's own (a repeated request id is a replay)
        tag = {"d'": "bench-g", "c'": "bench-l"}.get(part, f"bench-{part}")
        tag += str(round_of[part]) if round_of[part] > 1 else ""
        if part in LIMITED:
            set_limits(database, on=True)
        if part == "a":
            for clients, shape, (lo, hi, _) in shapes:
                measured(run_pgbench(url, clients, lo, hi, args.duration, f"{tag}-{clients}-{shape}"), label[shape])
        elif part == "b":
            for clients, shape, (lo, hi, _) in shapes:
                worker = psycopg_worker(url, lo, hi, f"{tag}-{clients}-{shape}")
                measured(run_threads(clients, args.duration, worker, "b"), label[shape])
        elif part in ("c", "c'"):
            for clients, shape, (_, _, ids) in shapes:
                worker = service_worker(database, ids, f"{tag}-{clients}-{shape}")
                measured(run_threads(clients, args.duration, worker, part), label[shape])
        else:
            database.engine.dispose()  # the service's connections are not needed while a server runs
            kind = SERVE if part in ("d'", "f") else GUNICORN
            with http_server(kind, url, files / f"{kind}.log") as server:
                servers[kind] = server.described
                say(f"HTTP server: {server.described}")
                run_wrk(server, 16, 2, files / SPREAD, f"{tag}-warm-up")  # every worker's imports and pool
                if part == "e":
                    if not run_batches(server, args.duration, files / SPREAD, database, tag, measured, label[SPREAD]):
                        continue
                else:
                    for clients, shape, _ in shapes:
                        model = f"{tag}-{clients}-{shape}"
                        result = run_wrk(server, clients, args.duration, files / shape, model)
                        result.part = part
                        if charged(database, model) < result.tps * args.duration * 0.99:
                            result.note = "; ".join(filter(None, [result.note, "fewer usage logs than 2xx answers"]))
                        measured(result, label[shape])
        if part in LIMITED:
            with database.engine.connect() as conn:
                limits = conn.scalar(text("SELECT count(*) FROM spending_limits WHERE reached_for IS NOT NULL"))
            if limits:
                raise SystemExit(f"({part}): {limits} limits reached, none should be")
            set_limits(database, on=False)
        checked(f"({part})")
    shutil.rmtree(files, ignore_errors=True)

    elapsed = time.perf_counter() - began
    print(
        f"\nCharging side by side, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {CORES} cores, {platform.machine()}; "
        f"PostgreSQL {version} (synchronous_commit {commit}); {args.duration} s a measurement; "
        f"{args.accounts:,} accounts and 1 hot account; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (other work on the machine shows here)"
    )
    for described in servers.values():
        print(f"HTTP server: {described}; wrk -t{min(16, CORES)} -c16 (-t1 -c1), bench/deduct.lua")
    print_table(results)
    print()
    for line in books:
        print(f"- books {line}")
    print(f"\nwhole run: {elapsed:.0f} s")


if __name__ == "__main__":
    main()
