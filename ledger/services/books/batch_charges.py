"""Batch charges (SPEC 12): up to 1,000 deducts in one transaction, each item answered exactly as one
deduct call would be.

The people of a batch are locked together, in one order (by id: no deadlock with other batches or
with single deducts, which lock one account), then one statement finds every replay and every hold
of the batch's request ids (a statement after the locks: it sees all their holders committed).
The items are decided in Python, in their order (a person's items apply one after the other), and
written with one statement: the usage logs, the balances, the ledger entries and the audit rows,
each table once, from one JSON array of the items. Refused items write nothing but, for a short
balance, their audit row, as a single deduct does.
"""

from __future__ import annotations

import collections
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, bindparam, column, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session

from ledger import metrics
from ledger.db import atomic, lock, retry_on_disconnect
from ledger.errors import (
    AccountDisabled,
    InsufficientBalance,
    InvalidRequest,
    LedgerError,
    RequestIdConflict,
    UserNotFound,
)
from ledger.i18n import N_
from ledger.logs import current_request_id
from ledger.models import BillingAccount, LedgerKind
from ledger.money import to_api
from ledger.services.audit import Origin, audit_row
from ledger.services.books.accounts import ChargeRequest, expire_due_holds
from ledger.services.books.charges import ACCOUNTS, AUDIT, ENTRIES, HOLDS, USAGE, USERS, Usage, charged_details
from ledger.services.books.low_balance import SITE_DEFAULT, note_crossing, threshold

MAX_ITEMS = 1000


@dataclass(frozen=True)
class ItemResult:
    """One item's outcome: `status` (charged, replayed, or the error code of SPEC 12), the charge
    for charged and replayed items, the refusal otherwise."""

    index: int
    status: str
    usage: Usage | None = None
    balance: Decimal | None = None
    error: LedgerError | None = None


@dataclass
class _Account:
    balance: Decimal
    held: Decimal
    disabled: bool
    low_balance: Decimal  # the person's threshold (their own, else the site's)
    charged: dict[str, Usage] = field(default_factory=dict)  # this batch's charges, by request id

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


def charge_list(charges: object) -> list[dict[str, Any]]:
    """A batch's `charges`: a list of 1 to MAX_ITEMS JSON objects, else InvalidRequest."""
    if not isinstance(charges, list) or not 1 <= len(charges) <= MAX_ITEMS:
        raise InvalidRequest(N_("Give a list of 1 to %(max)d charges."), field="charges", max=MAX_ITEMS)
    if not all(isinstance(item, dict) for item in charges):
        raise InvalidRequest(N_("Each charge is a JSON object."), field="charges")
    return charges


@retry_on_disconnect
def charge_batch(
    session: Session, *, charges: object, origin: Origin, low_balance: Decimal = SITE_DEFAULT
) -> list[ItemResult]:
    """Charge a batch of deducts (1 to 1,000 objects of SPEC 6's deduct fields) in one transaction.

    Raises InvalidRequest, with nothing written, when `charges` is not a list of 1 to 1,000
    objects; an object with bad fields is that item's invalid_request. Returns one result per
    item, in order. The item that takes a person's available amount below their threshold (their
    own, else `low_balance`) adds a balance.low event, as a single deduct would.
    """
    parsed = [_parse(item) for item in charge_list(charges)]
    requests = [p for p in parsed if isinstance(p, ChargeRequest)]
    with atomic(session):
        accounts = _lock_accounts(session, sorted({r.user_id for r in requests}), low_balance)
        pairs = [(r.user_id, r.request_id) for r in requests]
        before, taken = _look(session, pairs) if pairs else ({}, set())
        results, writes, refusals = [], [], []
        for index, item in enumerate(parsed):
            result = _decide(index, item, accounts, before, taken)
            results.append(result)
            if result.status == "charged":
                writes.append(result.usage)
                _note_crossing(session, accounts[result.usage.user_id], result.usage)
            elif result.status == "insufficient_balance":
                refusals.append(_refusal_row(item, result.error, origin))
        if writes:
            _write(session, writes, origin)
        if refusals:
            session.add_all(refusals)
    for status, count in collections.Counter(r.status for r in results).items():  # one write a status
        metrics.CHARGES.labels(status).inc(count)
    metrics.CHARGED_YUAN.inc(float(sum(u.amount for u in writes)))
    return results


def _parse(item: dict[str, Any]) -> ChargeRequest | InvalidRequest:
    try:
        return ChargeRequest.parse(
            item.get("user_id"), item.get("amount"), item.get("model"), item.get("request_id"), item.get("params")
        )
    except InvalidRequest as refused:
        return refused


def _lock_accounts(session: Session, user_ids: list[uuid.UUID], site_low: Decimal) -> dict[uuid.UUID, _Account]:
    """The batch's people, locked in the order of their ids; their past-due holds expired."""
    if not user_ids:
        return {}
    rows = session.connection().execute(LOCK, {"p_user_ids": user_ids})
    accounts = {
        user_id: _Account(balance, held, disabled, threshold(own, site_low))
        for user_id, balance, held, disabled, own in rows
    }
    for user_id, account in accounts.items():
        if account.held:  # rare: some holds may be past due (accounts.lock_account)
            row = lock(session, BillingAccount, BillingAccount.user_id == user_id)  # ours already
            assert row is not None
            expire_due_holds(session, row, datetime.now(UTC))
            session.flush()
            account.balance, account.held = row.balance, row.held
    return accounts


def _look(
    session: Session, pairs: list[tuple[uuid.UUID, str]]
) -> tuple[dict[tuple[uuid.UUID, str], Usage], set[tuple[uuid.UUID, str]]]:
    """The usage logs of the batch's request ids (replays), and the request ids that holds took: one
    statement."""
    arrays = {"p_pair_user": [user_id for user_id, _ in pairs], "p_pair_request": [r for _, r in pairs]}
    before, taken = {}, set()
    for row in session.connection().execute(LOOK, arrays):
        pair = (row.pair_user_id, row.pair_request_id)
        if row.id is not None:
            before[pair] = Usage(**{name: getattr(row, name) for name in USAGE_FIELDS})
        if row.held:
            taken.add(pair)
    return before, taken


def _decide(
    index: int,
    item: ChargeRequest | InvalidRequest,
    accounts: dict[uuid.UUID, _Account],
    before: dict[tuple[uuid.UUID, str], Usage],
    taken: set[tuple[uuid.UUID, str]],
) -> ItemResult:
    """What one deduct would answer, given the batch so far."""
    if isinstance(item, InvalidRequest):
        return ItemResult(index, "invalid_request", error=item)
    account = accounts.get(item.user_id)
    if account is None:
        return ItemResult(index, "user_not_found", error=UserNotFound())
    if account.disabled:
        return ItemResult(index, "account_disabled", error=AccountDisabled())
    if (item.user_id, item.request_id) in taken:
        return ItemResult(index, "request_id_conflict", error=RequestIdConflict(request_id=item.request_id))
    first = account.charged.get(item.request_id) or before.get((item.user_id, item.request_id))
    if first is not None:
        if first.amount != item.amount or first.model != item.model:
            conflict = RequestIdConflict(request_id=item.request_id, amount=to_api(first.amount), model=first.model)
            return ItemResult(index, "request_id_conflict", error=conflict)
        return ItemResult(index, "replayed", usage=first, balance=first.balance_after)
    if account.available < item.amount:
        short = InsufficientBalance(account.balance, account.available)
        return ItemResult(index, "insufficient_balance", error=short)
    account.balance -= item.amount
    usage = Usage(
        id=uuid.uuid4(),
        user_id=item.user_id,
        amount=item.amount,
        model=item.model,
        params=item.params,
        request_id=item.request_id,
        balance_after=account.balance,
    )
    account.charged[item.request_id] = usage
    return ItemResult(index, "charged", usage=usage, balance=usage.balance_after)


def _note_crossing(session: Session, account: _Account, usage: Usage) -> None:
    """After `usage` was taken from the account: a balance.low event if it crossed the threshold."""
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


def _refusal_row(item: Any, error: Any, origin: Origin) -> Any:
    details = {**item.described(), "balance": to_api(error.balance), "available": to_api(error.available)}
    return audit_row("usage.insufficient_balance", origin=origin, user_id=item.user_id, details=details)


def _write(session: Session, usages: list[Usage], origin: Origin) -> None:
    """The batch's charges in one statement: the usage logs, the balances, the ledger entries and the
    audit rows, each table written once from one JSON array of the items (in their order).

    JSON because psycopg adapts it in C (json.dumps) where a Python list per column is dumped item by
    item: that cost a third of a 100-item call."""
    last = {u.user_id: u.balance_after for u in usages}  # each person's balance after their last item
    items = [
        {
            "n": n,
            "id": str(u.id),
            "user_id": str(u.user_id),
            "amount": str(u.amount),
            "model": u.model,
            "params": u.params,
            "request_id": u.request_id,
            "balance_after": str(u.balance_after),
            "details": {**charged_details(u), "batch": True},
        }
        for n, u in enumerate(usages)
    ]
    created_at = (
        session.connection()
        .execute(
            WRITE,
            {
                "p_items": items,
                "p_accounts": [{"user_id": str(user_id), "balance": str(b)} for user_id, b in last.items()],
                "p_actor": origin.actor.value,
                "p_ip": origin.ip,
                "p_user_agent": (origin.user_agent or "")[:512] or None,
                "p_trace_id": current_request_id(),
            },
        )
        .scalar()
    )
    for usage in usages:
        usage.created_at = created_at  # the transaction's time: the same for all its rows


# --- the statements, built once ------------------------------------------------------------------


def _array(name: str, column: Any) -> Any:
    return bindparam(f"p_{name}", type_=ARRAY(column.type))


def _lock() -> Any:
    """The batch's accounts (an array of ids), locked in the order of their ids."""
    return (
        select(
            ACCOUNTS.c.user_id,
            ACCOUNTS.c.balance,
            ACCOUNTS.c.held,
            USERS.c.disabled_at.is_not(None),
            USERS.c.low_balance_threshold,
        )
        .join(USERS, USERS.c.id == ACCOUNTS.c.user_id)
        .where(ACCOUNTS.c.user_id == func.any(_array("user_ids", ACCOUNTS.c.user_id)))
        .order_by(ACCOUNTS.c.user_id)
        .with_for_update(of=ACCOUNTS)
    )


def _pairs() -> Any:
    """The batch's (person, request id) pairs, from two arrays."""
    return (
        func.unnest(_array("pair_user", USAGE.c.user_id), _array("pair_request", USAGE.c.request_id))
        .table_valued(column("user_id", USAGE.c.user_id.type), column("request_id", USAGE.c.request_id.type))
        .render_derived(with_types=False)
        .alias("pair")
    )


def _look_statement() -> Any:
    """For each pair that has one, its usage log (a replay) and whether a hold took its request id
    (each is unique by person and request id, so a pair gives at most one row)."""
    pair = _pairs()
    held = HOLDS.c.user_id.is_not(None)
    return (
        select(
            pair.c.user_id.label("pair_user_id"),
            pair.c.request_id.label("pair_request_id"),
            *USAGE.c,
            held.label("held"),
        )
        .select_from(pair)
        .outerjoin(USAGE, (USAGE.c.user_id == pair.c.user_id) & (USAGE.c.request_id == pair.c.request_id))
        .outerjoin(HOLDS, (HOLDS.c.user_id == pair.c.user_id) & (HOLDS.c.request_id == pair.c.request_id))
        .where(USAGE.c.id.is_not(None) | held)
    )


def _records(name: str, *columns: Any) -> Any:
    """A JSON array parameter read as rows (jsonb_to_recordset) with `columns` typed as in their table."""
    return (
        func.jsonb_to_recordset(bindparam(f"p_{name}", type_=JSONB))
        .table_valued(*[column(c.name, c.type) for c in columns])
        .render_derived(name=name, with_types=True)
    )


def _write_all() -> Any:
    """One statement for the whole batch (data-modifying CTEs over the items' rows)."""
    columns = ["id", "user_id", "amount", "model", "params", "request_id", "balance_after"]
    records = _records("items", *[USAGE.c[c] for c in columns], AUDIT.c.details, column("n", Integer()))
    item = select(records).cte("item")  # the JSON parsed once, read by each write
    written = (
        insert(USAGE)
        .from_select(columns, select(*[item.c[c] for c in columns]).order_by(item.c.n))
        .returning(USAGE.c.created_at)
        .cte("usage")
    )
    last = _records("accounts", ACCOUNTS.c.user_id, ACCOUNTS.c.balance)
    account = (
        update(ACCOUNTS)
        .where(ACCOUNTS.c.user_id == last.c.user_id)
        .values(balance=last.c.balance, updated_at=func.now())
        .returning(ACCOUNTS.c.user_id)
        .cte("account")
    )
    kind = bindparam("p_kind", LedgerKind.USAGE.value, type_=ENTRIES.c.kind.type)
    entry = (
        insert(ENTRIES)
        .from_select(
            ["user_id", "amount", "balance_after", "kind", "usage_log_id"],
            select(item.c.user_id, -item.c.amount, item.c.balance_after, kind, item.c.id).order_by(item.c.n),
        )
        .returning(ENTRIES.c.id)
        .cte("entry")
    )
    action = bindparam("p_action", "usage.charged", type_=AUDIT.c.action.type)
    audit = (
        insert(AUDIT)
        .from_select(
            ["user_id", "actor", "action", "ip", "user_agent", "details", "request_id"],
            select(
                item.c.user_id,
                bindparam("p_actor", type_=AUDIT.c.actor.type),
                action,
                bindparam("p_ip", type_=AUDIT.c.ip.type),
                bindparam("p_user_agent", type_=AUDIT.c.user_agent.type),
                item.c.details,
                bindparam("p_trace_id", type_=AUDIT.c.request_id.type),  # the HTTP request's id
            ).order_by(item.c.n),
        )
        .returning(AUDIT.c.id)
        .cte("audit")
    )
    return select(func.min(written.c.created_at)).add_cte(account, entry, audit)


LOCK = _lock()
LOOK = _look_statement()
USAGE_FIELDS = [c.name for c in USAGE.c]
WRITE = _write_all()
