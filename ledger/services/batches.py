"""Batch charges (SPEC 12): up to 1,000 deducts in one transaction, each item answered exactly as one
deduct call would be.

The people of a batch are locked together, in one order (by id: no deadlock with other batches or
with single deducts, which lock one account), then one statement finds every replay and every hold
of the batch's request ids (a statement after the locks: it sees all their holders committed).
The items are decided in Python, in their order (a person's items apply one after the other), and
written with one multi-row statement per table. Refused items write nothing but, for a short
balance, their audit row, as a single deduct does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, func, insert, select, tuple_, update
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
from ledger.models import BillingAccount, LedgerKind, UsageLog
from ledger.money import to_api
from ledger.services.audit import Origin, audit_row
from ledger.services.billing import ChargeRequest, expire_due_holds
from ledger.services.charges import ACCOUNTS, AUDIT, ENTRIES, HOLDS, USAGE, USERS
from ledger.services.low_balance import SITE_DEFAULT, note_crossing, threshold

MAX_ITEMS = 1000


@dataclass(frozen=True)
class ItemResult:
    """One item's outcome: `status` (charged, replayed, or the error code of SPEC 12), the charge
    for charged and replayed items, the refusal otherwise."""

    index: int
    status: str
    usage: UsageLog | None = None
    balance: Decimal | None = None
    error: LedgerError | None = None


@dataclass
class _Account:
    balance: Decimal
    held: Decimal
    disabled: bool
    low_balance: Decimal  # the person's threshold (their own, else the site's)
    charged: dict[str, UsageLog] = field(default_factory=dict)  # this batch's charges, by request id

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


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
    if not isinstance(charges, list) or not 1 <= len(charges) <= MAX_ITEMS:
        raise InvalidRequest(N_("Give a list of 1 to %(max)d charges."), field="charges", max=MAX_ITEMS)
    if not all(isinstance(item, dict) for item in charges):
        raise InvalidRequest(N_("Each charge is a JSON object."), field="charges")
    parsed = [_parse(item) for item in charges]
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
    for result in results:
        metrics.CHARGES.labels(result.status).inc()
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
    rows = session.connection().execute(
        select(
            ACCOUNTS.c.user_id,
            ACCOUNTS.c.balance,
            ACCOUNTS.c.held,
            USERS.c.disabled_at.is_not(None),
            USERS.c.low_balance_threshold,
        )
        .join(USERS, USERS.c.id == ACCOUNTS.c.user_id)
        .where(ACCOUNTS.c.user_id.in_(user_ids))
        .order_by(ACCOUNTS.c.user_id)
        .with_for_update(of=ACCOUNTS)
    )
    accounts = {
        user_id: _Account(balance, held, disabled, threshold(own, site_low))
        for user_id, balance, held, disabled, own in rows
    }
    for user_id, account in accounts.items():
        if account.held:  # rare: some holds may be past due (billing.lock_account)
            row = lock(session, BillingAccount, BillingAccount.user_id == user_id)  # ours already
            assert row is not None
            expire_due_holds(session, row, datetime.now(UTC))
            session.flush()
            account.balance, account.held = row.balance, row.held
    return accounts


def _look(
    session: Session, pairs: list[tuple[uuid.UUID, str]]
) -> tuple[dict[tuple[uuid.UUID, str], UsageLog], set[tuple[uuid.UUID, str]]]:
    """The usage logs of the batch's request ids (replays), and the request ids that holds took."""
    connection = session.connection()
    charged = connection.execute(select(USAGE).where(tuple_(USAGE.c.user_id, USAGE.c.request_id).in_(pairs)))
    before = {(row.user_id, row.request_id): UsageLog(**row._mapping) for row in charged}
    holds = select(HOLDS.c.user_id, HOLDS.c.request_id).where(tuple_(HOLDS.c.user_id, HOLDS.c.request_id).in_(pairs))
    taken = {(row.user_id, row.request_id) for row in connection.execute(holds)}
    return before, taken


def _decide(
    index: int,
    item: ChargeRequest | InvalidRequest,
    accounts: dict[uuid.UUID, _Account],
    before: dict[tuple[uuid.UUID, str], UsageLog],
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
    usage = UsageLog(
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


def _note_crossing(session: Session, account: _Account, usage: UsageLog) -> None:
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


def _write(session: Session, usages: list[UsageLog], origin: Origin) -> None:
    """The batch's charges: one multi-row statement per table, entries in the items' order."""
    connection = session.connection()
    created_at = (
        connection.execute(
            insert(USAGE).returning(USAGE.c.created_at),
            [
                {
                    "id": u.id,
                    "user_id": u.user_id,
                    "amount": u.amount,
                    "model": u.model,
                    "params": u.params,
                    "request_id": u.request_id,
                    "balance_after": u.balance_after,
                }
                for u in usages
            ],
        )
        .scalars()
        .first()
    )
    for usage in usages:
        usage.created_at = created_at  # the transaction's time: the same for all its rows
    last = {u.user_id: u.balance_after for u in usages}  # each person's balance after their last item
    connection.execute(
        update(ACCOUNTS)
        .where(ACCOUNTS.c.user_id == bindparam("p_user_id"))
        .values(balance=bindparam("p_balance"), updated_at=func.now()),
        [{"p_user_id": user_id, "p_balance": balance} for user_id, balance in last.items()],
    )
    connection.execute(
        insert(ENTRIES),
        [
            {
                "user_id": u.user_id,
                "amount": -u.amount,
                "balance_after": u.balance_after,
                "kind": LedgerKind.USAGE.value,
                "usage_log_id": u.id,
            }
            for u in usages
        ],
    )
    connection.execute(insert(AUDIT), _audit_rows(usages, origin))


def _audit_rows(usages: list[UsageLog], origin: Origin) -> list[dict[str, object]]:
    """One `usage.charged` audit row per charge, as charges.charge_usage writes for a single one."""
    request_id = current_request_id()
    return [
        {
            "user_id": u.user_id,
            "actor": origin.actor.value,
            "action": "usage.charged",
            "ip": origin.ip,
            "user_agent": (origin.user_agent or "")[:512] or None,
            "request_id": request_id,
            "details": {
                "amount": to_api(u.amount),
                "model": u.model,
                "request_id": u.request_id,
                "usage_id": str(u.id),
                "balance_after": to_api(u.balance_after),
                "batch": True,
            },
        }
        for u in usages
    ]
