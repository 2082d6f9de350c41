"""The audit trail: who did what, from where. Written in the same transaction as the change; a
refusal's row is kept even though the refused work is rolled back (`refusal`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.errors import LedgerError
from ledger.logs import current_request_id
from ledger.models import Actor, AuditLog
from ledger.services.paging import Page, newest_first
from ledger.validation import storable_text

E = TypeVar("E", bound=LedgerError)
USER_AGENT_MAX = 512  # what the audit and session rows keep


@dataclass(frozen=True)
class Origin:
    """Who acts and from where: the actor of SPEC 3 and, for people, their IP and browser (its
    user agent cut to what the audit and session rows keep)."""

    actor: Actor = Actor.SYSTEM
    ip: str | None = None
    user_agent: str | None = None

    def __post_init__(self) -> None:
        if self.user_agent is not None:
            # cut, and storable: a header may carry a NUL
            object.__setattr__(self, "user_agent", storable_text(self.user_agent, USER_AGENT_MAX) or None)


SYSTEM = Origin(Actor.SYSTEM)
INTERNAL = Origin(Actor.INTERNAL)
XORPAY = Origin(Actor.XORPAY)


def audit_row(
    action: str, *, origin: Origin, user_id: uuid.UUID | None = None, details: dict[str, Any] | None = None
) -> AuditLog:
    return AuditLog(
        user_id=user_id,
        actor=origin.actor,
        action=action,
        ip=origin.ip,
        user_agent=origin.user_agent,
        details=details or {},
        request_id=current_request_id(),
    )


def record_audit(
    session: Session,
    action: str,
    *,
    origin: Origin,
    user_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an audit row to the session's current transaction (the caller commits)."""
    row = audit_row(action, origin=origin, user_id=user_id, details=details)
    session.add(row)
    return row


def refusal(
    error: E,
    action: str,
    *,
    origin: Origin,
    user_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> E:
    """`error`, carrying an audit row that `db.atomic` commits after rolling the operation back.

    `raise refusal(InsufficientBalance(...), "usage.insufficient_balance", ...)` inside `atomic`:
    nothing of the operation is written but its trace.
    """
    error.audit_row = audit_row(action, origin=origin, user_id=user_id, details=details)
    return error


def audit_page(session: Session, user_id: uuid.UUID, before: object = None) -> Page[AuditLog]:
    """A page of the person's audit events, newest first, below the id `before` (raw: InvalidRequest
    when it is not one)."""
    return newest_first(session, select(AuditLog).where(AuditLog.user_id == user_id), AuditLog.id, before)
