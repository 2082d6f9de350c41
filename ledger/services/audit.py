"""The audit trail: who did what, from where. Written in the same transaction as the change; a
refusal's row is kept even though the refused work is rolled back (`refusal`)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.errors import LedgerError
from ledger.logs import current_request_id
from ledger.models import AuditLog
from ledger.services.context import Context
from ledger.services.paging import Page, newest_first

E = TypeVar("E", bound=LedgerError)


def audit_row(
    action: str, *, ctx: Context, user_id: uuid.UUID | None = None, details: dict[str, Any] | None = None
) -> AuditLog:
    return AuditLog(
        user_id=user_id,
        actor=ctx.actor,
        action=action,
        ip=ctx.ip,
        user_agent=ctx.user_agent,
        details=details or {},
        request_id=current_request_id(),
    )


def record_audit(
    session: Session,
    action: str,
    *,
    ctx: Context,
    user_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an audit row to the session's current transaction (the caller commits)."""
    row = audit_row(action, ctx=ctx, user_id=user_id, details=details)
    session.add(row)
    return row


def refusal(
    error: E,
    action: str,
    *,
    ctx: Context,
    user_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> E:
    """`error`, carrying an audit row that `db.atomic` commits after rolling the operation back.

    `raise refusal(InsufficientBalance(...), "usage.insufficient_balance", ...)` inside `atomic`:
    nothing of the operation is written but its trace.
    """
    error.audit_row = audit_row(action, ctx=ctx, user_id=user_id, details=details)
    return error


def audit_page(session: Session, user_id: uuid.UUID, before: object = None) -> Page[AuditLog]:
    """A page of the person's audit events, newest first, below the id `before` (raw: InvalidRequest
    when it is not one)."""
    return newest_first(session, select(AuditLog).where(AuditLog.user_id == user_id), AuditLog.id, before)
