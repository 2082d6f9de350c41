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

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, column, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from ledger import metrics
from ledger.db import atomic, retry_on_disconnect
from ledger.errors import InvalidRequest, LedgerError
from ledger.i18n import N_
from ledger.money import to_api
from ledger.services.audit import audit_row
from ledger.services.books.accounts import ChargeRequest
from ledger.services.books.engine import (
    ACCOUNTS,
    HOLDS,
    LOTS,
    USAGE,
    USERS,
    Account,
    Decision,
    Entry,
    Usage,
    decide,
    note_low,
    take,
    write,
)
from ledger.services.books.limits import has_limits, note_reached, site_zone, spending
from ledger.services.books.lots import drawn_by_usage, next_expiry
from ledger.services.books.low_balance import site_threshold, threshold
from ledger.services.context import Context

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


def charge_list(charges: object) -> list[dict[str, Any]]:
    """A batch's `charges`: a list of 1 to MAX_ITEMS JSON objects, else InvalidRequest."""
    if not isinstance(charges, list) or not 1 <= len(charges) <= MAX_ITEMS:
        raise InvalidRequest(N_("Give a list of 1 to %(max)d charges."), field="charges", max=MAX_ITEMS)
    if not all(isinstance(item, dict) for item in charges):
        raise InvalidRequest(N_("Each charge is a JSON object."), field="charges")
    return charges


@retry_on_disconnect
def charge_batch(session: Session, *, charges: object, ctx: Context) -> list[ItemResult]:
    """Charge a batch of deducts (1 to 1,000 objects of SPEC 6's deduct fields) in one transaction.

    Raises InvalidRequest, with nothing written, when `charges` is not a list of 1 to 1,000
    objects; an object with bad fields is that item's invalid_request. Returns one result per
    item, in order. The item that takes a person's available amount below their threshold (their
    own, else the site's) adds a balance.low event, as a single deduct would.
    """
    parsed = [_parse(item) for item in charge_list(charges)]
    requests = [p for p in parsed if isinstance(p, ChargeRequest)]
    with atomic(session):
        accounts, now = _lock_accounts(session, sorted({r.user_id for r in requests}), ctx)
        pairs = [(r.user_id, r.request_id) for r in requests]
        before, taken = _look(session, pairs) if pairs else ({}, set())
        results, writes, refusals = [], [], []
        for index, item in enumerate(parsed):
            result = _result(index, item, accounts, before, taken)
            results.append(result)
            if result.status == "charged":
                writes.append(Entry(result.usage, details={"batch": True}))
                note_low(session, accounts[result.usage.user_id], result.usage)
            elif result.status in ("insufficient_balance", "spending_limit_reached"):
                refusals.append(_refusal_row(item, result.error, ctx))
        # Its request ids were looked up after its locks, so nothing can have taken one since; were one
        # skipped, the balances after it would be wrong: the whole batch is rolled back.
        if writes and len(write(session, writes, ctx, now)) != len(writes):
            raise RuntimeError("a batch's charge was not written although its request id was free")
        if refusals:
            session.add_all(refusals)
        for account in accounts.values():
            note_reached(session, account.spending)
        replays = [r.usage for r in results if r.status == "replayed" and r.usage and r.usage.drawn is None]
        if replays:  # charged in an earlier call: what they drew then
            drawn = drawn_by_usage(session, [u.id for u in replays])
            for usage in replays:
                usage.drawn = drawn[usage.id]
        metrics.count_charges(session, (r.status for r in results), sum((e.usage.amount for e in writes), Decimal(0)))
    return results


def _parse(item: dict[str, Any]) -> ChargeRequest | InvalidRequest:
    try:
        return ChargeRequest.parse(
            item.get("user_id"), item.get("amount"), item.get("model"), item.get("request_id"), item.get("params")
        )
    except InvalidRequest as refused:
        return refused


def _lock_accounts(
    session: Session, user_ids: list[uuid.UUID], ctx: Context
) -> tuple[dict[uuid.UUID, Account], datetime]:
    """The batch's people, locked in the order of their ids, and the batch's instant (read once the
    locks are ours); their holds and lots past their expiry by then expired."""
    if not user_ids:
        return {}, ctx.now()
    rows = session.connection().execute(LOCK, {"p_user_ids": user_ids}).all()
    now = ctx.now()
    accounts = {
        user_id: Account(
            user_id, balance, held, disabled, threshold(own, site_threshold(ctx)), due is not None and due <= now
        )
        for user_id, balance, held, disabled, own, due, _ in rows
    }
    limited = {row[0] for row in rows if row[-1]}
    for account in accounts.values():
        if not account.disabled:
            account.expire_past_due(session, now)
            if account.user_id in limited:
                account.spending = spending(session, account.user_id, now, site_zone(ctx))
    return accounts, now


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


def _result(
    index: int,
    item: ChargeRequest | InvalidRequest,
    accounts: dict[uuid.UUID, Account],
    before: dict[tuple[uuid.UUID, str], Usage],
    taken: set[tuple[uuid.UUID, str]],
) -> ItemResult:
    """What one deduct would answer, given the batch so far (the engine decides)."""
    if isinstance(item, InvalidRequest):
        return ItemResult(index, "invalid_request", error=item)
    pair, account = (item.user_id, item.request_id), accounts.get(item.user_id)
    decision: Decision = decide(item, account, before.get(pair), pair in taken)
    usage = take(item, account) if account is not None and decision.status == "charged" else decision.usage
    return ItemResult(index, decision.status, usage, usage.balance_after if usage else None, decision.error)


def _refusal_row(item: Any, error: Any, ctx: Context) -> Any:
    """The audit row of an item refused for its money: short of it, or over a spending limit."""
    action = f"usage.{error.code}"
    figures = {k: to_api(v) if isinstance(v, Decimal) else v for k, v in error.details.items()}
    return audit_row(action, ctx=ctx, user_id=item.user_id, details={**item.described(), **figures})


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
            next_expiry(LOTS.c.user_id == ACCOUNTS.c.user_id),
            has_limits(ACCOUNTS.c.user_id),
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


LOCK = _lock()
LOOK = _look_statement()
USAGE_FIELDS = [c.name for c in USAGE.c]
