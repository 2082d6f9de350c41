"""The one charge engine: every charge of a person's money (a deduct, a batch item, a hold's
capture) is decided by `decide` and written by `write`; a hold's placement is decided by the same
`decide` (then sets the money aside: books.holds). Admin debits and refunds move money through
`accounts.post`, under the same account lock and the same rule (never beyond the available amount).

A charge's steps, in one transaction:
1. Lock the person's billing account (`SELECT ... FOR UPDATE`; several people: in the order of
   their ids, so that batches and single charges never deadlock). Holds and credit lots past their
   expiry are expired first (`expire_past_due`, under that lock): they count no more from that
   instant.
2. Look the request id up: a usage log (a replay, or a conflict when amount or model differ) or a
   hold that took it (a conflict). Request ids are one namespace per person (SPEC 11).
3. `decide`, in Python, on the locked figures: invalid, user_not_found, account_disabled,
   request_id_conflict, replayed, insufficient_balance, or charged.
4. `write` what is charged in one statement from one JSON array: the usage logs, the balances,
   the draws from the person's credit lots in the spending order (SPEC 20), the ledger entries and
   the audit rows. A deduct's usage log is not written when a charge or a
   hold took its request id while we waited for the lock (the statement sees what its lookup did
   not); the caller then looks again.

The statements are built once in SQLAlchemy Core and run on the DBAPI connection (`Prepared`); the
ORM models stay the schema's description, and a charge answers with a plain `Usage` record.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from sqlalchemy import (
    Boolean,
    Connection,
    Integer,
    bindparam,
    column,
    exists,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.orm import Session

from ledger.db import lock
from ledger.errors import AccountDisabled, InsufficientBalance, LedgerError, RequestIdConflict, UserNotFound
from ledger.logs import current_request_id
from ledger.models import (
    AuditLog,
    BillingAccount,
    CreditLot,
    Hold,
    LedgerEntry,
    LedgerKind,
    LotCategory,
    LotDraw,
    UsageLog,
    User,
)
from ledger.money import to_api
from ledger.services.books.accounts import ChargeRequest, expire_due
from ledger.services.books.limits import Spending
from ledger.services.books.low_balance import note_crossing
from ledger.services.context import Context

ACCOUNTS = BillingAccount.__table__
USAGE = UsageLog.__table__
ENTRIES = LedgerEntry.__table__
AUDIT = AuditLog.__table__
HOLDS = Hold.__table__
USERS = User.__table__
LOTS = CreditLot.__table__
DRAWS = LotDraw.__table__


@dataclass(slots=True)
class Usage:
    """A usage log as a charge wrote it (or first wrote it, for a replay): a plain record with the
    columns of UsageLog. The hot path needs no ORM object (building one cost as much as a tenth of
    a charge's Python, and 2 ms for a batch of 100 under its locks)."""

    id: uuid.UUID
    user_id: uuid.UUID
    amount: Decimal
    model: str
    params: dict[str, Any]
    request_id: str
    balance_after: Decimal
    created_at: datetime | None = None
    drawn: dict[str, Decimal] | None = None  # by kind of money (SPEC 20), once written


@dataclass(frozen=True)
class Charge:
    """The outcome of a charge: the usage log (as written, or as first written for a replay), the
    balance it left, and whether it was charged before."""

    usage: Usage
    balance: Decimal
    replayed: bool


@dataclass
class Account:
    """A locked billing account as the engine decides on it; the charges decided in this
    transaction lower its balance one after the other (a batch's items of one person)."""

    user_id: uuid.UUID
    balance: Decimal
    held: Decimal
    disabled: bool
    low_balance: Decimal  # the person's threshold: their own, else the site's
    lots_due: bool = False  # a lot past its expiry has money left (its expiry is to be written)
    charged: dict[str, Usage] = field(default_factory=dict)  # this transaction's charges, by request id
    spending: Spending | None = None  # their spending limits and each period's spending (SPEC 22), if any

    @property
    def available(self) -> Decimal:
        return self.balance - self.held

    def expire_past_due(self, session: Session, now: datetime) -> None:
        """Expire the account's holds and lots past their expiry (rare: only when it holds money or
        the lock's lookup saw a lot due), so that no figure counts them (SPEC 11, 20)."""
        if self.held or self.lots_due:
            row = lock(session, BillingAccount, BillingAccount.user_id == self.user_id)  # ours already: no wait
            assert row is not None
            expire_due(session, row, now, lots_due=self.lots_due)
            session.flush()
            self.balance, self.held = row.balance, row.held


@dataclass(frozen=True)
class Decision:
    """What a charge comes to: `status` (charged, replayed, or a refusal's code), the usage log for
    charged and replayed, the refusal otherwise."""

    status: str
    usage: Usage | None = None
    error: LedgerError | None = None


def decide(
    req: ChargeRequest, account: Account | None, first: Usage | Any | None, taken: bool, *, hold: bool = False
) -> Decision:
    """What a charge or a hold of `req` answers, on the locked account: `first` is what its request
    id already has of the same kind (a charge's usage log, a hold's hold: a replay when amount and
    model match, else a conflict), `taken` whether the other kind has it (a conflict). A charge
    that may go ahead is `take`n from the account; a hold is set aside by its own service. Past the
    balance, the person's spending limits (SPEC 22): a charge counts its wallet part, a hold its
    whole amount; what goes ahead is counted in `account.spending`."""
    if account is None:
        return Decision("user_not_found", error=UserNotFound())
    if account.disabled:
        return Decision("account_disabled", error=AccountDisabled())
    if taken:
        return Decision("request_id_conflict", error=RequestIdConflict(request_id=req.request_id))
    first = account.charged.get(req.request_id) or first
    if first is not None:
        if first.amount != req.amount or first.model != req.model:
            conflict = RequestIdConflict(request_id=req.request_id, amount=to_api(first.amount), model=first.model)
            return Decision("request_id_conflict", error=conflict)
        return Decision("replayed", usage=first if isinstance(first, Usage) else None)
    if account.available < req.amount:
        return Decision("insufficient_balance", error=InsufficientBalance(account.balance, account.available))
    if account.spending is not None and (refused := account.spending.admit(req.amount, hold=hold)) is not None:
        return Decision("spending_limit_reached", error=refused)
    return Decision("charged")


def take(req: ChargeRequest, account: Account) -> Usage:
    """Charge `req` to the locked account (in Python; `write` writes it): its usage log, with the
    balance it leaves."""
    account.balance -= req.amount
    usage = Usage(
        id=uuid.uuid4(),
        user_id=req.user_id,
        amount=req.amount,
        model=req.model,
        params=req.params,
        request_id=req.request_id,
        balance_after=account.balance,
    )
    account.charged[req.request_id] = usage
    return usage


def note_low(session: Session, account: Account, usage: Usage) -> None:
    """After `usage` was taken from the account: a balance.low event if it took the available
    amount below the person's threshold (SPEC 16)."""
    after = account.available
    note_crossing(
        session,
        user_id=usage.user_id,
        limit=account.low_balance,
        before=after + usage.amount,
        after=after,
        balance=account.balance,
        usage_id=usage.id,
        amount=usage.amount,
    )


def charged_details(usage: Usage) -> dict[str, object]:
    """A charge's audit details (`usage.charged`; a batch item adds `"batch": true`, a capture
    the hold and what it released)."""
    return {
        "amount": to_api(usage.amount),
        "model": usage.model,
        "request_id": usage.request_id,
        "usage_id": str(usage.id),
        "balance_after": to_api(usage.balance_after),
    }


@dataclass(frozen=True)
class Entry:
    """A charge to write: its usage log, its audit row's action and details, and whether a hold
    that has its request id stops it (a deduct's; a capture's is its own hold's)."""

    usage: Usage
    action: str = "usage.charged"
    details: dict[str, object] = field(default_factory=dict)
    guarded: bool = True


def write(
    session: Session, entries: list[Entry], ctx: Context, now: datetime, *, kept_since: datetime | None = None
) -> dict[uuid.UUID, datetime]:
    """Write charges, in their order, with one statement: their usage logs, the balances (each
    person's after their last charge here), their draws from the lots (SPEC 20: in the spending
    order, lots past their expiry at `now` left alone, but a capture of a hold placed at
    `kept_since` may spend what lots expiring after that instant kept for it), the ledger entries
    and the audit rows. Returns the usage logs written, with their
    time, and sets each one's `drawn`; a guarded one whose request id a charge or a hold took
    meanwhile is not, and nothing of it is (nor its person's balance, when it was their only one: a
    person's balance is set to their last charge's `balance_after`, so a caller that writes several
    charges of one person must see all of them written or roll back, as batches do).

    Raises RuntimeError (the caller's transaction then rolls back) when a charge's draws do not
    sum to it: the lots no longer add up to the balance the charge was decided on."""
    last = {e.usage.user_id: e.usage.balance_after for e in entries}
    items = [
        {
            "n": n,
            "id": str(e.usage.id),
            "user_id": str(e.usage.user_id),
            "amount": str(e.usage.amount),
            "model": e.usage.model,
            "params": e.usage.params,
            "request_id": e.usage.request_id,
            "balance_after": str(e.usage.balance_after),
            "action": e.action,
            "details": {**charged_details(e.usage), **e.details},
            "guarded": e.guarded,
        }
        for n, e in enumerate(entries)
    ]
    parameters = {
        "p_items": Jsonb(items),
        "p_accounts": Jsonb([{"user_id": str(user_id), "balance": str(b)} for user_id, b in last.items()]),
        "p_actor": ctx.actor.value,
        "p_ip": ctx.ip,
        "p_user_agent": ctx.user_agent,
        "p_trace_id": current_request_id(),
        "p_now": now,
        "p_kept_since": kept_since,
    }
    statement = WRITE if len(entries) > 1 else WRITE_ONE
    rows = {row.id: row for row in statement.all(session.connection(), parameters)}
    for entry in entries:
        row = rows.get(entry.usage.id)
        if row is None:
            continue
        usage = entry.usage
        usage.created_at = row.created_at
        usage.drawn = {c: Decimal(getattr(row, c) or 0) for c in CATEGORIES}
        if sum(usage.drawn.values()) != usage.amount:
            raise RuntimeError(f"charge {usage.id} of {usage.amount} drew {usage.drawn} from the lots")
    return {usage_id: row.created_at for usage_id, row in rows.items()}


CATEGORIES = [c.value for c in LotCategory]


# --- the statements, built once ---------------------------------------------------------------------


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
        rows = self._run(connection, parameters, all_rows=False)
        return rows[0] if rows else None

    def all(self, connection: Connection, parameters: dict[str, Any]) -> list[Any]:
        """Every row of the statement."""
        return self._run(connection, parameters, all_rows=True)

    def _run(self, connection: Connection, parameters: dict[str, Any], *, all_rows: bool) -> list[Any]:
        values = self.fixed | parameters
        with connection.connection.driver_connection.cursor(row_factory=namedtuple_row) as cursor:
            try:
                cursor.execute(self.sql, values)
            except BaseException as error:  # as SQLAlchemy's own execute: an interrupt also invalidates
                connection._handle_dbapi_exception(error, self.sql, values, cursor, None)  # raises
            if all_rows:
                return cursor.fetchall()
            row = cursor.fetchone()
            return [row] if row is not None else []


def _records(name: str, *columns: Any) -> Any:
    """A JSON array parameter read as rows (jsonb_to_recordset) with `columns` typed as in their table."""
    return (
        func.jsonb_to_recordset(bindparam(f"p_{name}", type_=JSONB))
        .table_valued(*[column(c.name, c.type) for c in columns])
        .render_derived(name=name, with_types=True)
    )


def _write_statement(*, ordered: bool = True) -> Any:
    """One statement for every charge of a transaction (data-modifying CTEs over the items' rows),
    its rows inserted in the items' order (ids follow it); `ordered=False` for a single item, whose
    three sorts were a tenth of the statement's time on the server."""

    def in_order(query: Any, n: Any) -> Any:
        return query.order_by(n) if ordered else query

    columns = ["id", "user_id", "amount", "model", "params", "request_id", "balance_after"]
    records = _records(
        "items",
        *[USAGE.c[c] for c in columns],
        AUDIT.c.action,
        AUDIT.c.details,
        column("n", Integer()),
        column("guarded", Boolean()),
    )
    item = select(records).cte("item")  # the JSON parsed once, read by each write
    taken_by_hold = exists().where(HOLDS.c.user_id == item.c.user_id, HOLDS.c.request_id == item.c.request_id)
    # Written at the charge's instant (the context's clock, read once the lock was ours), as holds
    # are: a spending limit's period (SPEC 22) is counted on the same clock that bounds it.
    charged_at = bindparam("p_now", type_=USAGE.c.created_at.type)
    written = (
        pg_insert(USAGE)
        .from_select(
            [*columns, "created_at"],
            in_order(
                select(*[item.c[c] for c in columns], charged_at).where(~(item.c.guarded & taken_by_hold)), item.c.n
            ),
        )
        .on_conflict_do_nothing(index_elements=[USAGE.c.user_id, USAGE.c.request_id])
        .returning(USAGE.c.id, USAGE.c.user_id, USAGE.c.created_at)
        .cte("usage")
    )
    done = select(item).join(written, written.c.id == item.c.id).cte("done")  # the charges written
    last = _records("accounts", ACCOUNTS.c.user_id, ACCOUNTS.c.balance)
    # The people written, as an array the index is searched with: the planner takes a JSON array for
    # 100 rows, and joined on that alone it read every billing account for each charge (a seq scan).
    # Not a parameter: an estimate drawn from a parameter's value kept the server planning the
    # statement anew at each call (custom plans) instead of reusing one.
    people = func.array(select(written.c.user_id).scalar_subquery())
    account = (
        update(ACCOUNTS)
        .where(ACCOUNTS.c.user_id == func.any(people), ACCOUNTS.c.user_id == last.c.user_id)
        .values(balance=last.c.balance, updated_at=func.now())
        .returning(ACCOUNTS.c.user_id)
        .cte("account")
    )
    kind = bindparam("p_kind", LedgerKind.USAGE.value, type_=ENTRIES.c.kind.type)
    entry = (
        insert(ENTRIES)
        .from_select(
            ["user_id", "amount", "balance_after", "kind", "usage_log_id"],
            in_order(select(done.c.user_id, -done.c.amount, done.c.balance_after, kind, done.c.id), done.c.n),
        )
        .returning(ENTRIES.c.id)
        .cte("entry")
    )
    audit = (
        insert(AUDIT)
        .from_select(
            ["user_id", "actor", "action", "ip", "user_agent", "details", "request_id"],
            in_order(
                select(
                    done.c.user_id,
                    bindparam("p_actor", type_=AUDIT.c.actor.type),
                    done.c.action,
                    bindparam("p_ip", type_=AUDIT.c.ip.type),
                    bindparam("p_user_agent", type_=AUDIT.c.user_agent.type),
                    done.c.details,
                    bindparam("p_trace_id", type_=AUDIT.c.request_id.type),  # the HTTP request's id
                ),
                done.c.n,
            ),
        )
        .returning(AUDIT.c.id)
        .cte("audit")
    )
    part = _draws(done, people)
    drawn = (
        insert(DRAWS)
        .from_select(["lot_id", "usage_log_id", "amount"], select(part.c.lot_id, part.c.usage_log_id, part.c.amount))
        .returning(DRAWS.c.id)
        .cte("drawn")
    )
    per_lot = select(part.c.lot_id, func.sum(part.c.amount).label("total")).group_by(part.c.lot_id).subquery("per_lot")
    spent = (
        update(LOTS)
        .where(LOTS.c.id == per_lot.c.lot_id)
        .values(remaining=LOTS.c.remaining - per_lot.c.total)
        .returning(LOTS.c.id)
        .cte("spent")
    )
    by_kind = (
        select(
            part.c.usage_log_id,
            *[func.sum(part.c.amount).filter(part.c.category == c.value).label(c.value) for c in LotCategory],
        )
        .group_by(part.c.usage_log_id)
        .subquery("by_kind")
    )
    return (
        select(written.c.id, written.c.created_at, *[by_kind.c[c.value] for c in LotCategory])
        .outerjoin(by_kind, by_kind.c.usage_log_id == written.c.id)
        .add_cte(account, entry, audit, drawn, spent)
    )


def _draws(done: Any, people: Any) -> Any:
    """Each written charge's draws from its person's lots (SPEC 20), set-based: a person's charges,
    in their order, cover consecutive stretches of the money they spend ([upto - amount, upto)),
    and their spendable lots, in the spending order, consecutive stretches of the money they hold;
    a charge draws from a lot what their stretches share. One charge may span lots; one lot may
    serve several charges of a batch. Spendable: money left that no pending refund set aside, not
    past its expiry at `p_now` (but a capture may spend what lots expiring after its hold was placed,
    `p_kept_since`, kept for it)."""
    free = LOTS.c.remaining - LOTS.c.reserved
    spending_order = [LOTS.c.expires_at.asc().nulls_last(), LOTS.c.spend_rank, LOTS.c.created_at, LOTS.c.id]
    now = bindparam("p_now", type_=LOTS.c.expires_at.type)
    kept_since = bindparam("p_kept_since", type_=LOTS.c.expires_at.type)  # a capture's hold's placement
    lot = (
        select(
            LOTS.c.id,
            LOTS.c.user_id,
            LOTS.c.category,
            free.label("free"),
            func.sum(free).over(partition_by=LOTS.c.user_id, order_by=spending_order).label("upto"),
        )
        .where(
            LOTS.c.user_id == func.any(people),
            LOTS.c.remaining > literal_column("0"),  # the lots index's condition, as a constant
            free > literal_column("0"),
            LOTS.c.expires_at.is_(None) | (LOTS.c.expires_at > now) | (LOTS.c.expires_at > kept_since),
        )
        .cte("lot")
    )
    span = select(
        done.c.id,
        done.c.user_id,
        done.c.amount,
        func.sum(done.c.amount).over(partition_by=done.c.user_id, order_by=done.c.n).label("upto"),
    ).cte("span")
    shared = func.least(span.c.upto, lot.c.upto) - func.greatest(span.c.upto - span.c.amount, lot.c.upto - lot.c.free)
    return (
        select(span.c.id.label("usage_log_id"), lot.c.id.label("lot_id"), lot.c.category, shared.label("amount"))
        .join_from(
            span,
            lot,
            (lot.c.user_id == span.c.user_id)
            & (lot.c.upto - lot.c.free < span.c.upto)
            & (span.c.upto - span.c.amount < lot.c.upto),
        )
        .cte("part")
    )


WRITE = Prepared.of(_write_statement())
WRITE_ONE = Prepared.of(_write_statement(ordered=False))
