"""Gunicorn settings for production: `gunicorn -c gunicorn.conf.py 'wsgi:app'` (SPEC 18). Supported
beside the default production server, `make serve` (granian, ledger/serve.py), which charged faster
in `make bench-charge` (parts (d) and (d'), bench/README.md).

Bind: 127.0.0.1:8000 (behind the proxy), or GUNICORN_BIND, or gunicorn's own `--bind`. Any setting
can be changed for one run with gunicorn's GUNICORN_CMD_ARGS, e.g. "--workers 3 --threads 4".

Sizing, from the core count. The app is I/O bound on PostgreSQL: a request is a little Python
(Flask, the ORM) and then waits on the database (three round trips and the commit's flush for a
charge), and the GIL is free while a thread waits. One charge is one transaction that holds the
account's row lock until it commits, so requests in flight beyond what PostgreSQL commits at once
only queue on that lock and on the cores (PostgreSQL often shares them) and stretch the tail.
So: two processes per core for Python's CPU (one GIL each), two threads each to overlap one
request's wait with another's Python, 4 x cores requests in flight; gthread workers, because the
sync worker closes every connection (a proxy's or a client's keep-alive is lost).

Measured, not guessed: `make bench-charge` part (d) (`--parts d --duration 8`, settings by
GUNICORN_CMD_ARGS), POST /api/billing/deduct from 16 wrk connections, 10,000 accounts / one hot
account, charges/s, on the 2-core development machine shared with other work (load 2-8, so single
runs vary by 2x; medians of 7 rounds for the last three, means of 2 for the others), 2026-11-26:
    sync  5 workers (2 x cores + 1)        83 / 54
    gthread 4 workers x 1 thread           88 / 60
    gthread 8 x 2                         112 / 115
    gthread 4 x 4                         133 / 65
    gthread 2 x 4                         162 / 114
    gthread 2 x 8                         213 / 98     p99 spread 301 ms
    gthread 3 x 4                         218 / 107    p99 spread 314 ms
    gthread 4 x 2 (kept: 2 x cores x 2)   175 / 142    p99 spread 257 ms
The last three are within the noise of each other on spread accounts; 4 x 2 has the best hot-account
figure and tail. Measured again after the charge's second round (0.49 ms of CPU in the service, one
run each, spread / hot charges/s): 4 x 2 665 / 354, 2 x 4 577 / 394, 4 x 4 693 / 488, 3 x 4 655 /
412, 2 x 8 583 / 424, and 4 x 2 again 658-745 / 458-554: still within the noise, so 4 x 2 stays.
`--worker-connections 4` (16 connections spread evenly over the workers) lowered the spread p99
from 63-68 ms to 43 ms but the hot rate to 407-431/s, and would cap a server at 16 keep-alive
connections: not kept (bench/README.md).
"""

import os
import shutil
import tempfile

cores = os.cpu_count() or 1

# Metrics (SPEC 18): each worker writes its counters to files here and a scrape adds them up. Set
# before any worker imports the app; emptied when gunicorn starts (one directory per gunicorn).
metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"ledger-metrics-{os.getpid()}")
)

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = 2 * cores
threads = 2


def when_ready(server):
    """Say the sizing in the log (bench/charge_compare.py reports it)."""
    cfg = server.cfg
    server.log.info("ledger: %d workers x %d threads (%s)", cfg.workers, cfg.threads, cfg.worker_class_str)


def on_starting(server):
    """Counters start from zero with the server (files of an earlier run would add up too)."""
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir, exist_ok=True)


def child_exit(server, worker):
    """A worker that exits takes its live gauges with it; its counters stay counted."""
    from ledger.metrics import worker_exited

    worker_exited(worker.pid)
