"""Redemption codes (兑换码, SPEC 14): batches made by admins, each code redeemed once for its amount.

A code is 16 characters of ALPHABET (no 0/O/1/I), stored without dashes and shown as
XXXX-XXXX-XXXX-XXXX; what a person types is matched without spaces, dashes or case.

Single use under any concurrency: a redemption claims the code with one conditional UPDATE
(unredeemed, not disabled, batch not disabled, not expired) in the same transaction as the credit;
whoever's UPDATE returns no row credits nothing (and the ledger's unique redemption_code would refuse
a second entry anyway). Redemptions of one person are serialised by a lock on their users row, so
that the count of their unknown codes (audit rows `code.refused` with reason `unknown`: durable,
shared by every process) cannot be outrun by parallel tries: after UNKNOWN_TRIES in an hour, every
redemption is 429 until fewer than that remain in the last hour. Locks: person, code, account.
Batches and the back office's actions are growth.code_batches.
"""

from __future__ import annotations

import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session

from ledger import validation
from ledger.db import atomic
from ledger.errors import (
    AccountDisabled,
    CodeDisabled,
    CodeExpired,
    CodeNotFound,
    CodeUsed,
    LedgerError,
    TooManyCodeTries,
    UserNotFound,
)
from ledger.models import AuditLog, CodeBatch, EventType, LedgerKind, RedemptionCode, User
from ledger.services.audit import record_audit
from ledger.services.books.accounts import credit
from ledger.services.context import Context
from ledger.services.events import emit_change

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 characters: 16 of them carry 80 random bits
CODE_LENGTH = 16
DASHES = "-‐‑‒–—―"  # what people and phones type between the groups
UNKNOWN_TRIES = 10
TRIES_WINDOW = timedelta(hours=1)


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise(raw: object) -> str | None:
    """A code as typed ("abcd-efgh jkmn-pqrs", full-width too) as stored, or None when it cannot be one."""
    if not isinstance(raw, str) or len(raw) > 64:
        return None
    text = unicodedata.normalize("NFKC", raw)
    code = "".join(c for c in text if not c.isspace() and c not in DASHES).upper()
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def shown(code: str) -> str:
    """XXXX-XXXX-XXXX-XXXX."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def last_day(expires_at: datetime | None, tz: ZoneInfo) -> date | None:
    """The last day a code can be redeemed (it expires at the midnight that ends it)."""
    return (expires_at - timedelta(microseconds=1)).astimezone(tz).date() if expires_at else None


def status_of(code: RedemptionCode, batch_disabled: datetime | None, now: datetime) -> str:
    """unused, redeemed, disabled or expired: what a redemption now would meet."""
    if code.redeemed_by is not None:
        return "redeemed"
    if code.disabled_at is not None or batch_disabled is not None:
        return "disabled"
    if code.expires_at is not None and code.expires_at <= now:
        return "expired"
    return "unused"


# --- one code -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeView:
    """A code as the back office looks it up."""

    code: RedemptionCode
    batch: CodeBatch
    status: str
    redeemer: User | None

    @property
    def display(self) -> str:
        return shown(self.code.code)

    def last_day(self, tz: ZoneInfo) -> date | None:
        return last_day(self.code.expires_at, tz)


def find_code(session: Session, raw: object, *, now: datetime) -> CodeView:
    """The code typed (any case, spaces, dashes), as it is at `now`; CodeNotFound (404) otherwise."""
    code = normalise(raw)
    row = session.execute(
        select(RedemptionCode, CodeBatch)
        .join(CodeBatch, CodeBatch.id == RedemptionCode.batch_id)
        .where(RedemptionCode.code == code)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if code is None or row is None:
        raise CodeNotFound(field="code")
    found, batch = row
    redeemer = session.get(User, found.redeemed_by) if found.redeemed_by else None
    return CodeView(found, batch, status_of(found, batch.disabled_at, now), redeemer)


# --- redeeming ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Redemption:
    code: str
    amount: Decimal
    balance: Decimal  # after the credit


REFUSALS: dict[type[LedgerError], str] = {
    CodeNotFound: "unknown",
    CodeUsed: "used",
    CodeDisabled: "disabled",
    CodeExpired: "expired",
}


def redeem(session: Session, user_id: uuid.UUID, raw_code: object, ctx: Context) -> Redemption:
    """Redeem a code for the person: claim it (conditional UPDATE) and credit its amount (ledger kind
    `redemption`, audit `code.redeemed`) in one transaction.

    Raises AccountDisabled (403), UserNotFound, TooManyCodeTries (429: UNKNOWN_TRIES unknown codes in
    the last hour), CodeNotFound (404), CodeUsed (409), CodeExpired / CodeDisabled (410: a disabled
    batch too). A refused code leaves an audit row `code.refused` with its reason, committed before
    the refusal is raised (the unknown ones are what the 429 counts).
    """
    now = ctx.now()
    code = normalise(raw_code)
    with atomic(session):
        _lock_person(session, user_id)
        if _unknown_tries(session, user_id, now) >= UNKNOWN_TRIES:
            raise TooManyCodeTries()
        claimed = _claim(session, code, user_id, now) if code else None
        if claimed is not None:
            batch_id, amount, credit_days = claimed
            entry = credit(
                session,
                user_id=user_id,
                amount=amount,
                kind=LedgerKind.REDEMPTION,
                ctx=ctx,
                action="code.redeemed",
                details={"code": code, "batch_id": str(batch_id)},
                expires_at=now + timedelta(days=credit_days) if credit_days else None,  # else GRANT_EXPIRY_DAYS
                redemption_code=code,
            )
            emit_change(session, EventType.REDEMPTION_REDEEMED, user_id=user_id, code=code, amount=amount)
            return Redemption(code, amount, entry.balance_after)
        refused = _why_not(session, code, now)
        typed = validation.storable_text(raw_code, 40) if isinstance(raw_code, str) else None
        details = {"reason": REFUSALS[type(refused)], "code": code or typed}
        record_audit(session, "code.refused", ctx=ctx, user_id=user_id, details=details)
    raise refused


def _lock_person(session: Session, user_id: uuid.UUID) -> None:
    """Lock the person's row (FOR NO KEY UPDATE: rows that name them can still be written) for the
    transaction, serialising their redemptions; refuse a disabled or unknown person."""
    row = session.execute(
        select(User.disabled_at).where(User.id == user_id).with_for_update(key_share=True)
    ).one_or_none()
    if row is None:
        raise UserNotFound()
    if row.disabled_at is not None:
        raise AccountDisabled()


def _unknown_tries(session: Session, user_id: uuid.UUID, now: datetime) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                AuditLog.user_id == user_id,
                AuditLog.created_at > now - TRIES_WINDOW,
                AuditLog.action == "code.refused",
                AuditLog.details["reason"].astext == "unknown",
            )
        )
        or 0
    )


def _claim(
    session: Session, code: str, user_id: uuid.UUID, now: datetime
) -> tuple[uuid.UUID, Decimal, int | None] | None:
    """Mark the code redeemed by the person if it can be redeemed now; its batch, amount and the days
    its credit lasts (None: the site's rule), or None.
    One statement: of two people claiming a code at once, the second waits for the first's commit,
    then finds it redeemed and claims nothing."""
    batch_disabled = exists().where(CodeBatch.id == RedemptionCode.batch_id, CodeBatch.disabled_at.is_not(None))
    row = session.execute(
        update(RedemptionCode)
        .where(
            RedemptionCode.code == code,
            RedemptionCode.redeemed_by.is_(None),
            RedemptionCode.disabled_at.is_(None),
            ~batch_disabled,
            or_(RedemptionCode.expires_at.is_(None), RedemptionCode.expires_at > now),
        )
        .values(redeemed_by=user_id, redeemed_at=now)
        .returning(
            RedemptionCode.batch_id,
            RedemptionCode.amount,
            select(CodeBatch.credit_days).where(CodeBatch.id == RedemptionCode.batch_id).scalar_subquery(),
        )
        .execution_options(synchronize_session=False)
    ).one_or_none()
    return (row[0], row[1], row[2]) if row else None


def _why_not(session: Session, code: str | None, now: datetime) -> LedgerError:
    """Why a code could not be claimed: unknown, used, disabled (itself or its batch), or expired."""
    row = None
    if code is not None:
        row = session.execute(
            select(RedemptionCode, CodeBatch.disabled_at)
            .join(CodeBatch, CodeBatch.id == RedemptionCode.batch_id)
            .where(RedemptionCode.code == code)
            .execution_options(populate_existing=True)
        ).one_or_none()
    if row is None:
        return CodeNotFound(field="code")
    status = status_of(row[0], row[1], now)
    refusal = {"redeemed": CodeUsed, "disabled": CodeDisabled, "expired": CodeExpired}.get(status, CodeUsed)
    return refusal(field="code")
