"""Charging at the speed of the database (SPEC 5): the single charge, on the hot path.

Still one `SELECT ... FOR UPDATE` transaction in Python, but in SQLAlchemy Core, two statements and
a commit: the first locks the billing account and, in the same round trip, finds a replay of the
request id (a usage log) or a hold that took it; the second writes the usage log, the balance,
the ledger entry and the audit row together (data-modifying CTEs, one round trip). Both are built
once in Core, compiled once, and run on the DBAPI connection under the session's transaction
(`Prepared`). The ORM models stay the schema's description; nothing here is flushed by a unit of
work, and a charge answers with a plain `Usage` record.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ParamSpec

from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, and_, bindparam, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.orm import Session

from ledger import metrics
from ledger.db import atomic, lock, retry_on_disconnect
from ledger.errors import AccountDisabled, LedgerError, RequestIdConflict, UserNotFound
from ledger.logs import current_request_id
from ledger.models import AuditLog, BillingAccount, Hold, LedgerEntry, LedgerKind, UsageLog, User
from ledger.money import to_api
from ledger.services.audit import Origin
from ledger.services.books.accounts import ChargeRequest, expire_due_holds, insufficient
from ledger.services.books.low_balance import SITE_DEFAULT, note_crossing, threshold

ACCOUNTS = BillingAccount.__table__
USAGE = UsageLog.__table__
ENTRIES = LedgerEntry.__table__
AUDIT = AuditLog.__table__
HOLDS = Hold.__table__
USERS = User.__table__
P = ParamSpec("P")


@dataclass(slots=True)
class Usage:
    """A usage log as a charge wrote it (or first wrote it, for a replay): a plain record with the
    columns of UsageLog. The hot path writes with one statement and needs no ORM object (building
    one cost as much as a tenth of a charge's Python, and 2 ms for a batch of 100 under its locks)."""

    id: uuid.UUID
    user_id: uuid.UUID
    amount: Decimal
    model: str
    params: dict[str, Any]
    request_id: str
    balance_after: Decimal
    created_at: datetime | None = None


@dataclass(frozen=True)
class Charge:
    """The outcome of a charge: the usage log (as written, or as first written for a replay), the
    balance it left, and whether it was charged before."""

    usage: Usage
    balance: Decimal
    replayed: bool


def _counted(charge: Callable[P, Charge]) -> Callable[P, Charge]:
    """Count each charge's outcome in the metrics (SPEC 18), once it is known."""

    @functools.wraps(charge)
    def counted(*args: P.args, **kwargs: P.kwargs) -> Charge:
        try:
            done = charge(*args, **kwargs)
        except LedgerError as refused:
            metrics.CHARGES.labels(refused.code).inc()
            raise
        metrics.CHARGES.labels("replayed" if done.replayed else "charged").inc()
        if not done.replayed:
            metrics.CHARGED_YUAN.inc(float(done.usage.amount))
        return done

    return counted


@_counted
@retry_on_disconnect
def charge_usage(
    session: Session,
    *,
    user_id: object,
    amount: object,
    model: object,
    request_id: object,
    params: object = None,
    origin: Origin,
    low_balance: Decimal = SITE_DEFAULT,
) -> Charge:
    """Charge a user for one use of a paid feature, at most once per (user, request_id).

    Takes the raw input (ChargeRequest.parse checks it). One transaction: locks the billing
    account; if request_id was charged before, returns that charge (`replayed=True`) or raises
    RequestIdConflict when amount or model differ (or a hold has that request id); if the available
    amount (balance - held) is short, raises InsufficientBalance and keeps only its audit row; else
    lowers the balance and writes the usage log, its ledger entry and an audit row, and a
    balance.low event when the charge takes the available amount below the person's threshold
    (their own, else `low_balance`, the site's). Raises InvalidRequest, UserNotFound.
    """
    req = ChargeRequest.parse(user_id, amount, model, request_id, params)
    asked = {"p_user_id": req.user_id, "p_request_id": req.request_id}
    with atomic(session):
        connection = session.connection()
        found = LOCK_AND_LOOK.one_or_none(connection, asked)
        if found is None:
            raise UserNotFound()
        if found.disabled:
            raise AccountDisabled()
        balance, held = found.balance, found.held
        if held:  # rare: the account has holds, some may be past due (accounts.lock_account)
            balance, held = _expire_due_holds(session, req.user_id)
        if found.hold_taken:
            raise RequestIdConflict(request_id=req.request_id)
        if found.usage_id is not None:
            return _replay(req, found)
        if balance - held < req.amount:
            raise insufficient(req, balance, balance - held, "usage.insufficient_balance", origin)
        usage = _usage_of(req, balance - req.amount)
        written = WRITE.one_or_none(connection, _write_parameters(usage, origin))
        if written is None:  # taken while we waited for the lock: look again (a new snapshot)
            again = LOCK_AND_LOOK.one_or_none(connection, asked)
            if again.hold_taken:
                raise RequestIdConflict(request_id=req.request_id)
            return _replay(req, again)
        usage.created_at = written.created_at
        available = balance - held
        note_crossing(
            session,
            user_id=req.user_id,
            limit=threshold(found.low_balance_threshold, low_balance),
            before=available,
            after=available - req.amount,
            balance=usage.balance_after,
            usage_id=usage.id,
            amount=req.amount,
        )
    return Charge(usage=usage, balance=usage.balance_after, replayed=False)


def _expire_due_holds(session: Session, user_id: uuid.UUID) -> tuple[Decimal, Decimal]:
    account = lock(session, BillingAccount, BillingAccount.user_id == user_id)  # already ours: no wait
    assert account is not None
    expire_due_holds(session, account, datetime.now(UTC))
    session.flush()
    return account.balance, account.held


def _replay(req: ChargeRequest, found: Any) -> Charge:
    """A request id charged before: the first answer, word for word, or a conflict."""
    if found.amount != req.amount or found.model != req.model:
        raise RequestIdConflict(request_id=req.request_id, amount=to_api(found.amount), model=found.model)
    first = Usage(
        id=found.usage_id,
        user_id=req.user_id,
        amount=found.amount,
        model=found.model,
        params=found.params,
        request_id=req.request_id,
        balance_after=found.balance_after,
        created_at=found.created_at,
    )
    return Charge(usage=first, balance=found.balance_after, replayed=True)


def _usage_of(req: ChargeRequest, balance_after: Decimal) -> Usage:
    """The usage log of a charge, to be written by WRITE."""
    return Usage(
        id=uuid.uuid4(),
        user_id=req.user_id,
        amount=req.amount,
        model=req.model,
        params=req.params,
        request_id=req.request_id,
        balance_after=balance_after,
    )


def _write_parameters(usage: Usage, origin: Origin) -> dict[str, Any]:
    return {
        "p_usage_id": usage.id,
        "p_user_id": usage.user_id,
        "p_amount": usage.amount,
        "p_debit": -usage.amount,
        "p_model": usage.model,
        "p_params": Jsonb(usage.params),
        "p_request_id": usage.request_id,
        "p_balance_after": usage.balance_after,
        "p_actor": origin.actor.value,
        "p_ip": origin.ip,
        "p_user_agent": (origin.user_agent or "")[:512] or None,
        "p_trace_id": current_request_id(),
        "p_details": Jsonb(charged_details(usage)),
    }


def charged_details(usage: Usage) -> dict[str, object]:
    """A `usage.charged` audit row's details (a batch's items add `"batch": true`)."""
    return {
        "amount": to_api(usage.amount),
        "model": usage.model,
        "request_id": usage.request_id,
        "usage_id": str(usage.id),
        "balance_after": to_api(usage.balance_after),
    }


# --- the two statements, built once ---------------------------------------------------------------


def _param(name: str, column: Any) -> Any:
    """A bound parameter typed like `column`. Its key never names a column: SQLAlchemy would take an
    execution parameter named like a column of an INSERT or UPDATE as a value for it."""
    return bindparam(f"p_{name}", type_=column.type)


def _lock_and_look() -> Any:
    """The account locked, with the usage log of this request id if any, and whether a hold has it.

    Under READ COMMITTED the locked row is read as the last lock holder left it, but the joined
    rows as the statement's snapshot saw them: a usage log or hold committed by the transaction we
    waited for is not seen here. The write guards against that in a statement of its own.
    """
    user_id, request_id = _param("user_id", ACCOUNTS.c.user_id), _param("request_id", USAGE.c.request_id)
    taken = exists().where(HOLDS.c.user_id == ACCOUNTS.c.user_id, HOLDS.c.request_id == request_id)
    joined = ACCOUNTS.join(USERS, USERS.c.id == ACCOUNTS.c.user_id).outerjoin(
        USAGE, and_(USAGE.c.user_id == ACCOUNTS.c.user_id, USAGE.c.request_id == request_id)
    )
    return (
        select(
            ACCOUNTS.c.balance,
            ACCOUNTS.c.held,
            USERS.c.disabled_at.is_not(None).label("disabled"),
            USERS.c.low_balance_threshold,
            USAGE.c.id.label("usage_id"),
            USAGE.c.amount,
            USAGE.c.model,
            USAGE.c.params,
            USAGE.c.balance_after,
            USAGE.c.created_at,
            taken.label("hold_taken"),
        )
        .select_from(joined)
        .where(ACCOUNTS.c.user_id == user_id)
        .with_for_update(of=ACCOUNTS)
    )


def _write() -> Any:
    """One statement for the whole charge: the usage log, the balance, its ledger entry and the
    audit row. Returns the usage log's created_at, or nothing when the request id turned out to be
    taken (a charge or a hold committed while we waited for the lock): then nothing is written.
    Being a statement of its own, it sees everything committed before the lock was ours."""
    p = {c.name: _param(c.name, c) for c in USAGE.c if c.name not in ("id", "created_at")}
    usage_id, user_id = _param("usage_id", USAGE.c.id), p["user_id"]
    taken_by_hold = exists().where(HOLDS.c.user_id == user_id, HOLDS.c.request_id == p["request_id"])
    written = (
        pg_insert(USAGE)
        .from_select(["id", *p], select(usage_id, *p.values()).where(~taken_by_hold))
        .on_conflict_do_nothing(index_elements=[USAGE.c.user_id, USAGE.c.request_id])
        .returning(USAGE.c.id, USAGE.c.created_at)
        .cte("usage")
    )
    did_write = exists(select(written.c.id))
    account = (
        update(ACCOUNTS)
        .where(ACCOUNTS.c.user_id == user_id, did_write)
        .values(balance=p["balance_after"], updated_at=func.now())
        .returning(ACCOUNTS.c.user_id)
        .cte("account")
    )
    kind = bindparam("p_kind", LedgerKind.USAGE.value, type_=ENTRIES.c.kind.type)
    entry_columns = ["user_id", "amount", "balance_after", "kind", "usage_log_id"]
    debit = _param("debit", ENTRIES.c.amount)
    entry = (
        insert(ENTRIES)
        .from_select(entry_columns, select(user_id, debit, p["balance_after"], kind, written.c.id))
        .returning(ENTRIES.c.id)
        .cte("entry")
    )
    action = bindparam("p_action", "usage.charged", type_=AUDIT.c.action.type)
    audit_values = [user_id, _param("actor", AUDIT.c.actor), action]
    audit_values += [_param(name, AUDIT.c[name]) for name in ("ip", "user_agent", "details")]
    audit_values.append(bindparam("p_trace_id", type_=AUDIT.c.request_id.type))  # the HTTP request's id
    audit = (
        insert(AUDIT)
        .from_select(
            ["user_id", "actor", "action", "ip", "user_agent", "details", "request_id"],
            select(*audit_values).where(did_write),
        )
        .returning(AUDIT.c.id)
        .cte("audit")
    )
    return select(written.c.created_at).add_cte(account, entry, audit)


@dataclass(frozen=True)
class Prepared:
    """A statement of the hot path, compiled once to psycopg's SQL with the values of its fixed
    parameters, and run on the session's DBAPI connection: psycopg prepares it on the server after a
    few runs, and SQLAlchemy's per-call work (the statement's cache key, parameter and result
    processing) is skipped, which was half of what the service added to psycopg's own cost. A
    failure still goes through SQLAlchemy's handling: a dropped connection is invalidated and raised
    as a DBAPIError, as from `connection.execute`. Parameters are given as psycopg takes them
    (Jsonb for JSON); a row's fields are read by name."""

    sql: str
    fixed: dict[str, Any]

    @classmethod
    def of(cls, statement: Any) -> Prepared:
        compiled = statement.compile(dialect=psycopg_dialect())
        return cls(str(compiled), {k: v for k, v in compiled.params.items() if v is not None})

    def one_or_none(self, connection: Connection, parameters: dict[str, Any]) -> Any:
        """The statement's first row, or None."""
        values = self.fixed | parameters
        with connection.connection.driver_connection.cursor(row_factory=namedtuple_row) as cursor:
            try:
                cursor.execute(self.sql, values)
            except BaseException as error:  # as SQLAlchemy's own execute: an interrupt also invalidates
                connection._handle_dbapi_exception(error, self.sql, values, cursor, None)  # raises
            return cursor.fetchone()


LOCK_AND_LOOK = Prepared.of(_lock_and_look())
WRITE = Prepared.of(_write())
