"""`make run`: the development server and one job worker, started together and stopped together
(Ctrl-C), on HOST:PORT (.env; default 127.0.0.1:5000).
Development only: production runs `make serve` (or gunicorn) and `flask --app wsgi jobs worker` apart."""

from __future__ import annotations

import signal
import subprocess
import sys
from types import FrameType

from ledger import create_app
from ledger.config import Settings


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # Ctrl-C and SIGTERM end both alike


def main() -> None:
    app = create_app()  # starts (or joins) the embedded PostgreSQL before the worker joins it too
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker"])
    for stop in (signal.SIGINT, signal.SIGTERM):  # also when started where SIGINT is ignored (in background)
        signal.signal(stop, _stop)
    try:
        config: Settings = app.config["LEDGER"]
        app.run(host=config.HOST, port=config.PORT, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        worker.terminate()  # the worker finishes its running jobs, then exits
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


if __name__ == "__main__":
    main()
