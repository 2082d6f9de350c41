"""What the benchmarks share: a fresh database at the newest revision; bulk-seeded accounts and the
check of the books after a run; the production HTTP server started as production starts it."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text
from werkzeug.security import generate_password_hash

from ledger.db import Database, embedded_postgres_url
from ledger.migrations import fresh_database as _fresh_database
from ledger.services.books.batch_charges import MAX_ITEMS, charge_batch
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL

ROOT = Path(__file__).resolve().parent.parent
AMOUNT = Decimal("0.0125")  # one charge of the benchmarks, and of the seed's history
BALANCE = Decimal("1000.0000")  # each of the seeded accounts 1..N
HOT_BALANCE = Decimal("10000000.0000")  # the hot account 0
HISTORY = 3  # past charges of each account, written by the seed


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the database -------------------------------------------------------------------------------


def embedded_server() -> tuple[str, Path]:
    """An embedded PostgreSQL in a temporary directory (deleted at exit): its URL and data folder
    (the socket is in the data folder)."""
    folder = Path(tempfile.mkdtemp(prefix="ledger-bench-"))

    def remove_folder() -> None:  # registered first, so run after the server's cleanup has deleted pg
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty

    atexit.register(remove_folder)
    return embedded_postgres_url(folder / "pg", cleanup_mode="delete"), folder / "pg"


def fresh_database(name: str, server: str | None = None) -> str:
    """A new database `name`: on `server`, else BENCH_DATABASE_URL's server, else an embedded
    PostgreSQL in a temporary directory (deleted at exit)."""
    server = server or os.environ.get("BENCH_DATABASE_URL") or embedded_server()[0]
    return _fresh_database(server, name)


def user_id(n: int) -> str:
    """Account n's user id, as the SQL of the seed and of charge.pgbench derive it."""
    return str(uuid.UUID(hashlib.md5(f"bench-{n}".encode()).hexdigest()))  # noqa: S324 - an id, not a secret


def seed(database: Database, accounts: int, balance: Decimal = BALANCE) -> Decimal:
    """Accounts 1..N (`balance` each) and the hot account 0 (HOT_BALANCE), each funded by one
    `adjustment` ledger entry and its lot, in bulk SQL; returns the total of the balances."""
    password_hash = generate_password_hash("bench-password")
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, email, password_hash, invite_code) "
                "SELECT md5('bench-' || n)::uuid, 'bench-' || n || '@example.com', :hash, 'bench' || n "
                "FROM generate_series(0, :accounts) AS n"
            ),
            {"hash": password_hash, "accounts": accounts},
        )
        conn.execute(
            text(
                "INSERT INTO billing_accounts (user_id, balance) "
                "SELECT md5('bench-' || n)::uuid, CASE WHEN n = 0 THEN :hot ELSE :balance END "
                "FROM generate_series(0, :accounts) AS n"
            ),
            {"hot": HOT_BALANCE, "balance": balance, "accounts": accounts},
        )
        conn.execute(
            text(
                "INSERT INTO ledger_entries (user_id, amount, balance_after, kind, memo) "
                "SELECT user_id, balance, balance, 'adjustment', 'bench funding' FROM billing_accounts"
            )
        )
        conn.execute(  # each funding a lot of given money that never expires (SPEC 20)
            text(
                "INSERT INTO credit_lots (user_id, category, ledger_entry_id, amount, remaining) "
                "SELECT user_id, 'granted', id, amount, amount FROM ledger_entries"
            )
        )
    history(database, accounts)
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        conn.execute(text("CHECKPOINT"))  # the seed's pages written out now, not during a measurement
    return HOT_BALANCE + balance * accounts


def history(database: Database, accounts: int, per_account: int = HISTORY) -> None:
    """Past charges (model bench-history), written by the batch service, so that the tables are
    analyzed with rows in them, as a live database's are. On empty tables PostgreSQL plans a
    connection's foreign-key checks and prepared look-ups as sequential scans and keeps those plans
    while the tables grow: the first part measured got slower by the second."""
    items = [
        {"user_id": user_id(n), "amount": str(AMOUNT), "model": "bench-history", "request_id": f"history-{k}"}
        for k in range(per_account)
        for n in range(accounts + 1)
    ]
    with database.session() as session:
        for start in range(0, len(items), MAX_ITEMS):
            charge_batch(session, charges=items[start : start + MAX_ITEMS], ctx=INTERNAL)


def check_books(database: Database, start_total: Decimal) -> str:
    """`ledger verify` finds nothing, and the balances are the start minus every charge, exactly."""
    with database.session() as session:
        breaches = list(find_breaches(session))
        if breaches:
            raise SystemExit(f"ledger verify: {len(breaches)} breaches, e.g. {breaches[:3]}")
        total, spent, charges = session.execute(
            text(
                "SELECT (SELECT sum(balance) FROM billing_accounts), "
                "(SELECT coalesce(sum(amount), 0) FROM usage_logs), (SELECT count(*) FROM usage_logs)"
            )
        ).one()
    if total != start_total - spent:
        raise SystemExit(f"balances total {total}, but {start_total} - {spent} charged = {start_total - spent}")
    return f"ledger verify clean; balances {total} = {start_total} - {spent} ({charges:,} usage logs)"


# --- the HTTP server ------------------------------------------------------------------------------

GUNICORN, SERVE = "gunicorn", "serve"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def post(base: str, path: str, token: str, body: object) -> int:
    request = urllib.request.Request(  # noqa: S310 - our own local server
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "x-internal-token": token},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - our own local server
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


def healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=2) as answer:  # noqa: S310 - local server
            return answer.status == 200
    except OSError:
        return False


def serve_available() -> bool:
    """Is there `python -m ledger.serve` (the granian launcher) in this checkout?"""
    return (ROOT / "ledger" / "serve.py").is_file()


def server_command(kind: str, port: int) -> tuple[list[str], dict[str, str], str]:
    """How production starts each server: the command, its environment, and how a run names it."""
    if kind == GUNICORN:
        command = [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py"]
        return [*command, "--bind", f"127.0.0.1:{port}", "wsgi:app"], {}, "`gunicorn -c gunicorn.conf.py 'wsgi:app'`"
    # `make serve`'s command, HOST and PORT from the environment
    return [sys.executable, "-m", "ledger.serve"], {"HOST": "127.0.0.1", "PORT": str(port)}, "`python -m ledger.serve`"


@dataclass
class Server:
    """A running HTTP server: its address, the internal token it takes, and how to start it again
    (the same command on the same port) after it was killed."""

    base: str
    token: str
    described: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, tries: int = 300) -> bool:
        """Start the command in a process group of its own (master and workers) and wait, up to
        `tries` tenths of a second, until /healthz answers 200; False if it exits or never does."""
        with self.log.open("a") as out:
            self.process = subprocess.Popen(  # noqa: S603
                self.command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        for _ in range(tries):
            if self.process.poll() is not None:
                return False
            if healthy(self.base):
                return True
            time.sleep(0.1)
        return False

    def kill(self) -> None:
        """kill -9 of the whole process group: master and workers at once, nothing cleaned up."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextmanager
def http_server(kind: str, url: str, log: Path, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """gunicorn (`gunicorn -c gunicorn.conf.py 'wsgi:app'`) or `python -m ledger.serve` (`kind`) on
    a free port, in production mode when the configuration allows it here (secrets set; the local
    Redis as rate-limit storage, else memory://), else in development mode. Stopped at the end."""
    token = secrets.token_urlsafe(32)
    base_env = os.environ | {
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "INTERNAL_API_KEY": token,
        "XORPAY_APP_SECRET": secrets.token_urlsafe(32),
        "XORPAY_SANDBOX": "0",
        "RATELIMIT_ENABLED": "1",
        # production refuses http:// addresses; nothing is fetched from these in the benchmarks
        "SITE_URL": "https://ledger.example",
        "XORPAY_NOTIFY_URL": "https://ledger.example/api/payments/webhook",
    }
    modes = [("production", "memory://"), ("development", "memory://")]
    if reachable("127.0.0.1", 6379):  # production refuses memory:// today
        modes.insert(0, ("production", "redis://127.0.0.1:6379"))
    port = free_port()
    command, server_env, name = server_command(kind, port)
    for env_name, storage in modes:
        env = base_env | server_env | (extra_env or {}) | {"LEDGER_ENV": env_name, "RATELIMIT_STORAGE_URI": storage}
        log.write_text("")
        server = Server(f"http://127.0.0.1:{port}", token, "", command, env, log)
        if server.start():
            break
        say(f"{kind} did not start with LEDGER_ENV={env_name}, storage {storage}:\n{log.read_text()[-2000:]}")
        server.stop()
    else:
        raise SystemExit(f"{kind} did not start in any mode")
    sizing = re.search(r"ledger: ([^\"\n]+)", log.read_text())
    server.described = (
        f"{name}, {sizing[1] if sizing else 'sizing not logged'}, "
        f"LEDGER_ENV={env_name}, RATELIMIT_STORAGE_URI={storage}"
    )
    prefix = "GUNICORN_" if kind == GUNICORN else "GRANIAN_"
    for variable in sorted(v for v in os.environ if v.startswith(prefix)):
        server.described += f", {variable}={os.environ[variable]!r}"
    try:
        yield server
    finally:
        server.stop()
