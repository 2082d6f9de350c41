"""Charging at the speed of the database (SPEC 5): the single charge, on the hot path.

Still one `SELECT ... FOR UPDATE` transaction in Python, but in SQLAlchemy Core, two statements and
a commit: the first locks the billing account and, in the same round trip, finds a replay of the
request id (a usage log) or a hold that took it; the second writes the usage log, the balance,
the ledger entry and the audit row together (data-modifying CTEs, one round trip). The ORM models
stay the schema's description; nothing here is flushed by a unit of work.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, and_, exists, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from ledger.db import atomic, lock
from ledger.errors import RequestIdConflict, UserNotFound
from ledger.models import AuditLog, BillingAccount, Hold, LedgerEntry, LedgerKind, UsageLog
from ledger.money import to_api
from ledger.services.audit import Origin
from ledger.services.billing import ChargeRequest, expire_due_holds, insufficient

ACCOUNTS = BillingAccount.__table__
USAGE = UsageLog.__table__
ENTRIES = LedgerEntry.__table__
AUDIT = AuditLog.__table__
HOLDS = Hold.__table__


@dataclass(frozen=True)
class Charge:
    """The outcome of a charge: the usage log (as written, or as first written for a replay), the
    balance it left, and whether it was charged before."""

    usage: UsageLog
    balance: Decimal
    replayed: bool


def charge_usage(
    session: Session,
    *,
    user_id: object,
    amount: object,
    model: object,
    request_id: object,
    params: object = None,
    origin: Origin,
) -> Charge:
    """Charge a user for one use of a paid feature, at most once per (user, request_id).

    Takes the raw input (ChargeRequest.parse checks it). One transaction: locks the billing
    account; if request_id was charged before, returns that charge (`replayed=True`) or raises
    RequestIdConflict when amount or model differ (or a hold has that request id); if the available
    amount (balance - held) is short, raises InsufficientBalance and keeps only its audit row; else
    lowers the balance and writes the usage log, its ledger entry and an audit row. Raises
    InvalidRequest, UserNotFound.
    """
    req = ChargeRequest.parse(user_id, amount, model, request_id, params)
    with atomic(session):
        found = session.execute(_lock_and_look(req)).one_or_none()
        if found is None:
            raise UserNotFound()
        balance, held = found.balance, found.held
        if held:  # rare: the account has holds, some may be past due (billing.lock_account)
            account = lock(session, BillingAccount, BillingAccount.user_id == req.user_id)
            assert account is not None
            expire_due_holds(session, account, datetime.now(UTC))
            session.flush()
            balance, held = account.balance, account.held
        if found.hold_taken:
            raise RequestIdConflict(request_id=req.request_id)
        if found.usage_id is not None:
            return _replay(req, found)
        if balance - held < req.amount:
            raise insufficient(req, balance, balance - held, "usage.insufficient_balance", origin)
        usage = _usage_of(req, balance - req.amount)
        usage.created_at = session.execute(_write(usage, origin)).scalar()
        if usage.created_at is None:  # taken while we waited for the lock: look again (a new snapshot)
            again = session.execute(_lock_and_look(req)).one()
            if again.hold_taken:
                raise RequestIdConflict(request_id=req.request_id)
            return _replay(req, again)
    return Charge(usage=usage, balance=usage.balance_after, replayed=False)


def _lock_and_look(req: ChargeRequest) -> Any:
    """The account locked, with the usage log of this request id if any, and whether a hold has it.

    Under READ COMMITTED the locked row is read as the last lock holder left it, but the joined
    rows as the statement's snapshot saw them: a usage log or hold committed by the transaction we
    waited for is not seen here. The write (`_write`) guards against that in a statement of its own.
    """
    return (
        select(
            ACCOUNTS.c.balance,
            ACCOUNTS.c.held,
            USAGE.c.id.label("usage_id"),
            USAGE.c.amount,
            USAGE.c.model,
            USAGE.c.params,
            USAGE.c.balance_after,
            USAGE.c.created_at,
            exists()
            .where(HOLDS.c.user_id == ACCOUNTS.c.user_id, HOLDS.c.request_id == req.request_id)
            .label("hold_taken"),
        )
        .select_from(
            ACCOUNTS.outerjoin(USAGE, and_(USAGE.c.user_id == ACCOUNTS.c.user_id, USAGE.c.request_id == req.request_id))
        )
        .where(ACCOUNTS.c.user_id == req.user_id)
        .with_for_update(of=ACCOUNTS)
    )


def _replay(req: ChargeRequest, found: Row[Any]) -> Charge:
    """A request id charged before: the first answer, word for word, or a conflict."""
    if found.amount != req.amount or found.model != req.model:
        raise RequestIdConflict(request_id=req.request_id, amount=to_api(found.amount), model=found.model)
    first = UsageLog(
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


def _usage_of(req: ChargeRequest, balance_after: Decimal) -> UsageLog:
    """The usage log of a charge (not added to a session: the write is one Core statement)."""
    return UsageLog(
        id=uuid.uuid4(),
        user_id=req.user_id,
        amount=req.amount,
        model=req.model,
        params=req.params,
        request_id=req.request_id,
        balance_after=balance_after,
    )


def _write(usage: UsageLog, origin: Origin) -> Any:
    """One statement for the whole charge: the usage log, the balance, its ledger entry and the
    audit row. Returns the usage log's created_at, or nothing when the request id turned out to be
    taken (a charge or a hold committed while we waited for the lock): then nothing is written.
    Being a statement of its own, it sees everything committed before the lock was ours."""
    taken_by_hold = exists().where(HOLDS.c.user_id == usage.user_id, HOLDS.c.request_id == usage.request_id)
    values = {
        "id": usage.id,
        "user_id": usage.user_id,
        "amount": usage.amount,
        "model": usage.model,
        "params": usage.params,
        "request_id": usage.request_id,
        "balance_after": usage.balance_after,
    }
    written = (
        pg_insert(USAGE)
        .from_select(
            list(values), select(*(literal(v, USAGE.c[k].type) for k, v in values.items())).where(~taken_by_hold)
        )
        .on_conflict_do_nothing(index_elements=[USAGE.c.user_id, USAGE.c.request_id])
        .returning(USAGE.c.id, USAGE.c.created_at)
        .cte("usage")
    )
    account = (
        update(ACCOUNTS)
        .where(ACCOUNTS.c.user_id == usage.user_id, exists(select(written.c.id)))
        .values(balance=usage.balance_after, updated_at=func.now())
        .returning(ACCOUNTS.c.user_id)
        .cte("account")
    )
    entry = (
        insert(ENTRIES)
        .from_select(
            ["user_id", "amount", "balance_after", "kind", "usage_log_id"],
            select(
                literal(usage.user_id, ENTRIES.c.user_id.type),
                literal(-usage.amount, ENTRIES.c.amount.type),
                literal(usage.balance_after, ENTRIES.c.balance_after.type),
                literal(LedgerKind.USAGE.value, ENTRIES.c.kind.type),
                written.c.id,
            ),
        )
        .returning(ENTRIES.c.id)
        .cte("entry")
    )
    details = {
        "amount": to_api(usage.amount),
        "model": usage.model,
        "request_id": usage.request_id,
        "usage_id": str(usage.id),
        "balance_after": to_api(usage.balance_after),
    }
    audit_values = {
        "user_id": usage.user_id,
        "actor": origin.actor.value,
        "action": "usage.charged",
        "ip": origin.ip,
        "user_agent": (origin.user_agent or "")[:512] or None,
        "details": details,
    }
    audit = (
        insert(AUDIT)
        .from_select(
            list(audit_values),
            _row(AUDIT, audit_values).where(exists(select(written.c.id))),
        )
        .returning(AUDIT.c.id)
        .cte("audit")
    )
    return select(written.c.created_at).add_cte(account, entry, audit)


def _row(table: Any, values: dict[str, Any]) -> Any:
    """SELECT of `values` as typed literals (bound parameters), for an INSERT ... SELECT."""
    return select(*(literal(value, table.c[name].type) for name, value in values.items()))
