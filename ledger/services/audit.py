"""The audit trail: who did what, from where. Written in the same transaction as the change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ledger.models import AuditLog


@dataclass(frozen=True)
class Origin:
    """Who acts and from where: the actor of SPEC 3 and, for people, their IP and browser."""

    actor: str = "system"
    ip: str | None = None
    user_agent: str | None = None


SYSTEM = Origin("system")
INTERNAL = Origin("internal")


def record_audit(
    session: Session,
    action: str,
    *,
    origin: Origin,
    user_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an audit row to the session's current transaction (the caller commits)."""
    entry = AuditLog(
        user_id=user_id,
        actor=origin.actor,
        action=action,
        ip=origin.ip,
        user_agent=(origin.user_agent or "")[:512] or None,
        details=details or {},
    )
    session.add(entry)
    return entry
