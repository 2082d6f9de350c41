"""The ledger core: every balance change goes through `_post` (via `charge_usage` or `credit`).

A balance change locks the billing account row (`SELECT ... FOR UPDATE`), moves the balance, and
appends the ledger entry, its source row and an audit row in one transaction (SPEC 4.5).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.db import atomic, is_storable_json, is_storable_text
from ledger.models import LEDGER_KINDS, BillingAccount, LedgerEntry, UsageLog
from ledger.money import MAX_CHARGE, STORAGE_PLACES, InvalidAmount, parse_amount, to_api
from ledger.services.audit import Origin, record_audit
from ledger.services.errors import InsufficientBalance, InvalidRequest, RequestIdConflict, UserNotFound

MODEL_MAX_LENGTH = 100
REQUEST_ID_MAX_LENGTH = 128
PARAMS_MAX_BYTES = 16 * 1024


@dataclass(frozen=True)
class Charge:
    """The outcome of `charge_usage`: the usage log, and whether it was charged before."""

    usage: UsageLog
    balance: Decimal
    replayed: bool


def lock_account(session: Session, user_id: uuid.UUID) -> BillingAccount:
    """Lock the user's billing account row for the rest of the transaction; raise UserNotFound."""
    account = session.scalars(
        select(BillingAccount)
        .where(BillingAccount.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)  # the identity map may hold a stale balance
    ).one_or_none()
    if account is None:
        raise UserNotFound()
    return account


def _post(account: BillingAccount, amount: Decimal, kind: str, session: Session, **reference: Any) -> LedgerEntry:
    """Move a locked account's balance by `amount` and append the ledger entry that says so."""
    assert kind in LEDGER_KINDS
    account.balance += amount
    entry = LedgerEntry(user_id=account.user_id, amount=amount, balance_after=account.balance, kind=kind, **reference)
    session.add(entry)
    return entry


def validate_params(params: object) -> dict[str, Any]:
    """A charge's params: a JSON object that JSONB can store (no NaN, NUL or lone surrogate), 16 KB at most."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidRequest("params must be a JSON object", field="params")
    if not is_storable_json(params):
        raise InvalidRequest(
            "params must be plain JSON: no NaN or Infinity, NUL characters or invalid Unicode", field="params"
        )
    if len(json.dumps(params, ensure_ascii=False).encode("utf-8")) > PARAMS_MAX_BYTES:
        raise InvalidRequest(f"params must not exceed {PARAMS_MAX_BYTES // 1024} KB of JSON", field="params")
    return params


def validate_charge(amount: object, model: object, request_id: object) -> tuple[Decimal, str, str]:
    """Check the inputs of a charge; raise InvalidRequest naming the first bad field."""
    try:
        value = parse_amount(amount, places=STORAGE_PLACES, maximum=MAX_CHARGE)
    except InvalidAmount as exc:
        raise InvalidRequest(str(exc), field="amount") from None
    if not isinstance(model, str) or not 1 <= len(model.strip()) <= MODEL_MAX_LENGTH or not is_storable_text(model):
        raise InvalidRequest(f"model must be text of 1 to {MODEL_MAX_LENGTH} characters", field="model")
    if (
        not isinstance(request_id, str)
        or not 1 <= len(request_id) <= REQUEST_ID_MAX_LENGTH
        or not is_storable_text(request_id)
    ):
        raise InvalidRequest(f"request_id must be text of 1 to {REQUEST_ID_MAX_LENGTH} characters", field="request_id")
    return value, model.strip(), request_id


def charge_usage(
    session: Session,
    *,
    user_id: uuid.UUID,
    amount: Decimal | object,
    model: object,
    request_id: object,
    params: object = None,
    origin: Origin,
) -> Charge:
    """Charge a user for one use of a paid feature, at most once per (user, request_id).

    One transaction: locks the billing account; if request_id was charged before, returns that
    charge (`replayed=True`) or raises RequestIdConflict when amount or model differ; if the balance
    is short, writes only an audit row and raises InsufficientBalance; else lowers the balance and
    writes the usage log, its ledger entry and an audit row. Raises InvalidRequest, UserNotFound.
    """
    raw_amount = format(amount, "f") if isinstance(amount, Decimal) else amount  # JSON numbers are refused
    amount, model, request_id = validate_charge(raw_amount, model, request_id)
    params = validate_params(params)
    short_of: Decimal | None = None
    with atomic(session):
        account = lock_account(session, user_id)
        previous = session.scalars(
            select(UsageLog).where(UsageLog.user_id == user_id, UsageLog.request_id == request_id)
        ).one_or_none()
        if previous is not None:
            if previous.amount != amount or previous.model != model:
                raise RequestIdConflict(request_id=request_id, amount=to_api(previous.amount), model=previous.model)
            # A replay answers exactly what the first call answered.
            return Charge(usage=previous, balance=previous.balance_after, replayed=True)

        if account.balance < amount:
            short_of = account.balance
            record_audit(
                session,
                "usage.insufficient_balance",
                origin=origin,
                user_id=user_id,
                details={
                    "amount": to_api(amount),
                    "balance": to_api(account.balance),
                    "model": model,
                    "request_id": request_id,
                },
            )
        else:
            usage = UsageLog(
                id=uuid.uuid4(),
                user_id=user_id,
                amount=amount,
                model=model,
                params=params,
                request_id=request_id,
                balance_after=account.balance - amount,
            )
            session.add(usage)
            _post(account, -amount, "usage", session, usage_log=usage)
            record_audit(
                session,
                "usage.charged",
                origin=origin,
                user_id=user_id,
                details={
                    "usage_id": str(usage.id),
                    "amount": to_api(amount),
                    "model": model,
                    "request_id": request_id,
                    "balance_after": to_api(usage.balance_after),
                },
            )
    if short_of is not None:  # raised after the commit, so that the audit row is kept
        raise InsufficientBalance(short_of)
    return Charge(usage=usage, balance=usage.balance_after, replayed=False)


def credit(
    session: Session,
    *,
    user_id: uuid.UUID,
    amount: Decimal,
    kind: str,
    origin: Origin,
    action: str,
    details: dict[str, Any] | None = None,
    memo: str | None = None,
    **reference: Any,
) -> LedgerEntry:
    """Add money to a user's balance inside the caller's transaction (top-up, reward, adjustment).

    The caller holds the transaction so that the source row (the paid order, the invite relation)
    is locked and updated in the same unit of work. Locks the billing account, appends the ledger
    entry (`kind`, `reference` naming its source row) and an audit row `action`. Raises
    UserNotFound; refuses a non-positive amount.
    """
    if not session.in_transaction():
        raise RuntimeError("credit() must run inside the caller's transaction")
    if not isinstance(amount, Decimal) or amount <= 0 or amount != amount.quantize(Decimal("0.0001")):
        raise ValueError(f"credit amount must be a positive Decimal with at most 4 places, not {amount!r}")
    if kind == "usage":
        raise ValueError("usage is a debit: use charge_usage")
    account = lock_account(session, user_id)
    entry = _post(account, amount, kind, session, memo=memo, **reference)
    record_audit(
        session,
        action,
        origin=origin,
        user_id=user_id,
        details={
            "amount": to_api(amount),
            "kind": kind,
            "balance_after": to_api(entry.balance_after),
            **(details or {}),
        },
    )
    return entry


def adjust_balance(session: Session, *, user_id: uuid.UUID, amount: Decimal, memo: str, origin: Origin) -> LedgerEntry:
    """Credit a user by hand (support, the demo seed): one transaction of its own."""
    with atomic(session):
        return credit(
            session,
            user_id=user_id,
            amount=amount,
            kind="adjustment",
            origin=origin,
            action="balance.adjusted",
            memo=memo,
        )


def get_balance(session: Session, user_id: uuid.UUID) -> Decimal:
    balance = session.scalar(select(BillingAccount.balance).where(BillingAccount.user_id == user_id))
    if balance is None:
        raise UserNotFound()
    return balance
