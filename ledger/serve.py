"""`make serve`: the production web server, granian's WSGI interface (a Rust HTTP server) serving
`wsgi:app` on HOST:PORT (default 127.0.0.1:8000, behind the proxy).

HOST, PORT and the sizing come from the environment, else from `.env` when there is one (as the
app's own settings do), else the defaults below; GRANIAN_WORKERS, GRANIAN_BLOCKING_THREADS and
GRANIAN_BACKPRESSURE (granian's own names) change the sizing for one run.

Sizing: one worker process per core (one GIL each) and 4 Python threads each (the app waits on
PostgreSQL most of a request, and a waiting thread frees the GIL). Measured, not guessed, with
`make bench-charge`'s part (d') (POST /api/billing/deduct, wrk, 16 connections, 10,000 accounts;
charges/s, medians of 3-5 alternating rounds on one database, 6-8 s each, 2026-12-07, on the
2-core machine shared with other work: load 5-10, so single figures vary by 2x):
    2 x 4 (kept)   569 / 513 / 478 / 376 in four tuning runs (gunicorn's 4 x 2: 280 / 335 in two)
    2 x 8          458 (run 1)            2 x 2   394 (run 1)          3 x 4   430 (run 1)
    4 x 2          403 (run 2)            2 x 6   397 (run 4)          2 x 3, 3 x 3   347, 350 (run 4)
    runtime mode st, or --http 1, or both (2 x 4): 397, 422, 377 against 478 (run 3)
Against gunicorn, five rounds more (6 s each): 16 connections spread 425 / 314 charges/s, p99 145 /
242 ms; 16 on the hot account 226 / 156; 1 connection 206 / 206 (bench/README.md).
Backpressure, the connections a worker takes at once, stays granian's own (its backlog shared among
the workers, 512 each for 2): a worker at its limit accepts no connection, even an idle keep-alive
one's, so a limit near the thread count left new connections waiting while a proxy's idle ones
held the places (tests/web/test_serve.py).

Metrics (SPEC 18): each worker process writes its counters to files in PROMETHEUS_MULTIPROC_DIR
and a scrape adds them up; the directory is emptied at every start (a fresh one under the
temporary folder unless set), and a worker that exits is told to prometheus_client. Logs: granian's
own lines are JSON lines on standard error like the app's (its access log stays off: the app logs
every request itself, with its request id).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from ledger.config import load_settings

TARGET = "wsgi:app"
HOST, PORT = "127.0.0.1", 8000
CORES = os.cpu_count() or 1


def sizing(values: Mapping[str, str]) -> dict[str, int | None]:
    """Workers, Python threads each, and connections each worker takes at once (None: granian's
    default, its backlog shared among the workers)."""
    workers = int(values.get("GRANIAN_WORKERS") or CORES)
    threads = int(values.get("GRANIAN_BLOCKING_THREADS") or 4)
    backpressure = int(values["GRANIAN_BACKPRESSURE"]) if values.get("GRANIAN_BACKPRESSURE") else None
    return {"workers": workers, "blocking_threads": threads, "backpressure": backpressure}


def settings(environ: Mapping[str, str] | None = None, env_file: str | Path = ".env") -> dict[str, str]:
    """The variables the launcher reads: the environment wins over `.env`."""
    values = {k: v for k, v in dotenv_values(env_file).items() if v} if Path(env_file).is_file() else {}
    return values | dict(os.environ if environ is None else environ)


def fresh_metrics_dir(values: Mapping[str, str]) -> str:
    """PROMETHEUS_MULTIPROC_DIR, emptied (counters start from zero with the server), in our
    environment before any worker imports prometheus_client."""
    directory = values.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
        tempfile.gettempdir(), f"ledger-metrics-{os.getpid()}"
    )
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "ledger.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {
        "_granian": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "granian.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


def server(host: str, port: int, size: Mapping[str, int | None]) -> Any:
    from granian import Granian
    from granian.constants import Interfaces

    from ledger.metrics import worker_exited

    class Server(Granian):  # type: ignore[misc, valid-type]
        """granian has no hook for a worker's exit (gunicorn's child_exit). A worker exits while the
        server runs only to be replaced (it died, or a reload), so each spawn tells prometheus_client
        about the workers gone since: from the thread that forks (a thread of our own could hold a
        lock when a worker is forked, and the worker would wait on its copy forever), looking at
        each process's sentinel (granian's own watcher reaps them). granian 2.8's private
        `_spawn_worker` (setup.cfg pins its minor version)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.started: list[Any] = []  # the workers' processes not known to be gone

        def _spawn_worker(self, idx: int, target: Any, callback_loader: Any) -> Any:
            gone = wait([process.sentinel for process in self.started], timeout=0) if self.started else []
            for process in [p for p in self.started if p.sentinel in gone]:
                worker_exited(process.pid)
                self.started.remove(process)
            worker = super()._spawn_worker(idx, target, callback_loader)
            self.started.append(worker.inner)  # started (and given its pid) by granian right after
            return worker

    return Server(
        TARGET,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=size["workers"],
        blocking_threads=size["blocking_threads"],
        backpressure=size["backpressure"],
        respawn_failed_workers=True,  # as gunicorn replaces a worker that died
        log_dictconfig=LOGGING,
        log_access=False,
    )


def main() -> None:
    load_settings()  # a setting that cannot run stops here, not in every worker granian respawns
    values = settings()
    fresh_metrics_dir(values)
    size = sizing(values)
    host, port = values.get("HOST") or HOST, int(values.get("PORT") or PORT)
    # The workers' settings derive SITE_URL (and the sandbox's and notify addresses) from these, unless set.
    os.environ["HOST"], os.environ["PORT"] = host, str(port)
    granian = server(host, port, size)
    from granian import __version__ as granian_version
    from granian.log import logger

    logger.info(
        "ledger: %d workers x %d threads, backpressure %d (granian %s)",
        granian.workers,
        granian.blocking_threads,
        granian.backpressure,
        granian_version,
    )
    granian.serve()


if __name__ == "__main__":
    main()
