"""The back office's side of redemption codes (SPEC 14): batches made, listed, downloaded as CSV and
disabled, and single codes disabled. Every action takes the admin and a reason and writes an audit
row (actor `admin`, the admin's id, `via`, the reason) in its transaction. Redeeming is
growth.codes.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ledger import validation
from ledger.db import atomic
from ledger.errors import InvalidRequest, NotFound
from ledger.i18n import N_
from ledger.models import CodeBatch, RedemptionCode, User
from ledger.money import parse_amount, to_api
from ledger.services.audit import record_audit
from ledger.services.context import Context, reason_of
from ledger.services.growth.codes import CodeView, find_code, last_day, new_code, shown, status_of

MAX_COUNT = 10_000
MAX_CREDIT_DAYS = 3650
MAX_AMOUNT = Decimal("100000.00")
NOTE_MAX = 200
PAGE = 25
LAST_DAY = date(9999, 12, 30)  # the day after it must still be a date
CSV_COLUMNS = ("code", "amount", "expires", "status")


@dataclass(frozen=True)
class BatchPlan:
    """A batch as the confirmation step shows it, its input checked."""

    count: int
    amount: Decimal
    expires_on: date | None  # the last day, inclusive, in the site's time zone
    expires_at: datetime | None  # the midnight that ends it
    note: str | None
    credit_days: int | None = None  # a code's credit expires this many days after its redemption

    @property
    def total(self) -> Decimal:
        return self.amount * self.count


def preview_create_batch(
    admin: Context,
    *,
    count: object,
    amount: object,
    expires: object,
    note: object,
    tz: ZoneInfo,
    credit_days: object = None,
) -> BatchPlan:
    """`create_batch`'s check, without writing: 1 to 10,000 codes, an exact amount (2 decimals at
    most), an optional last day (YYYY-MM-DD, today or later in `tz` at the context's time), an
    optional note, an optional `credit_days` (1 to 3,650: the days a code's credit lasts after its
    redemption). Raises InvalidRequest naming the field."""
    number = validation.whole_number(count, "count", minimum=1, maximum=MAX_COUNT)
    value = parse_amount(amount, places=2, maximum=MAX_AMOUNT)
    expires_on = expires_at = None
    if isinstance(expires, str) and expires.strip():
        expires_on = validation.day(expires.strip(), "expires", first=date(1970, 1, 1), last=LAST_DAY)
        if expires_on < admin.now().astimezone(tz).date():
            raise InvalidRequest(N_("The expiry date is in the past."), field="expires")
        expires_at = datetime.combine(expires_on + timedelta(days=1), time.min, tzinfo=tz)
    elif expires is not None and not isinstance(expires, str):
        raise InvalidRequest(N_("Enter a date as YYYY-MM-DD."), field="expires")
    text = validation.optional_text(note, "note", max_length=NOTE_MAX)
    days = None
    if credit_days is not None and not (isinstance(credit_days, str) and not credit_days.strip()):
        days = validation.whole_number(credit_days, "credit_days", minimum=1, maximum=MAX_CREDIT_DAYS)
    return BatchPlan(number, value, expires_on, expires_at, text, days)


def create_batch(
    session: Session,
    admin: Context,
    *,
    count: object,
    amount: object,
    expires: object,
    note: object,
    reason: object,
    tz: ZoneInfo,
    credit_days: object = None,
) -> tuple[CodeBatch, list[str]]:
    """Make a batch of codes (see `preview_create_batch`) from `secrets`, audited `codes.batch_created` with
    the admin and the reason. One transaction. Returns the batch and its codes, as stored."""
    why = reason_of(reason)
    plan = preview_create_batch(
        admin, count=count, amount=amount, expires=expires, note=note, tz=tz, credit_days=credit_days
    )
    with atomic(session):
        batch = CodeBatch(
            id=uuid.uuid4(),
            amount=plan.amount,
            count=plan.count,
            note=plan.note,
            expires_at=plan.expires_at,
            credit_days=plan.credit_days,
            created_by=admin.admin_id,
        )
        session.add(batch)
        session.flush()
        made = _insert_codes(session, batch, plan.count)
        details = {"batch_id": str(batch.id), "count": plan.count, "amount": to_api(plan.amount), "note": plan.note}
        details["expires"] = plan.expires_on.isoformat() if plan.expires_on else None
        details["credit_days"] = plan.credit_days
        record_audit(
            session,
            "codes.batch_created",
            ctx=admin,
            user_id=admin.admin_id,
            details=admin.admin_details(why, **details),
        )
    return batch, made


def _insert_codes(session: Session, batch: CodeBatch, count: int) -> list[str]:
    """`count` new codes of `batch`; a code already taken (1 chance in 2^80) is drawn again."""
    made: list[str] = []
    while len(made) < count:
        fresh = {new_code() for _ in range(count - len(made))}
        rows = [
            {
                "code": code,
                "batch_id": batch.id,
                "amount": batch.amount,
                "expires_at": batch.expires_at,
                "created_by": batch.created_by,
            }
            for code in fresh
        ]
        stmt = insert(RedemptionCode).on_conflict_do_nothing().returning(RedemptionCode.code)
        made += session.scalars(stmt, rows).all()
    return made


@dataclass(frozen=True)
class BatchFigures:
    batch: CodeBatch
    redeemed: int
    disabled: int  # codes disabled one by one (a disabled batch disables all its codes)
    redeemed_amount: Decimal

    def last_day(self, tz: ZoneInfo) -> date | None:
        return last_day(self.batch.expires_at, tz)


def _figures() -> Any:
    return select(
        CodeBatch,
        func.count(RedemptionCode.redeemed_by),
        func.count(RedemptionCode.disabled_at),
        func.coalesce(func.sum(RedemptionCode.amount).filter(RedemptionCode.redeemed_by.is_not(None)), 0),
    ).outerjoin(RedemptionCode, RedemptionCode.batch_id == CodeBatch.id)


def list_batches(session: Session, *, page: int = 1) -> tuple[list[BatchFigures], int]:
    """The batches, newest first, PAGE at a time, with how many codes were redeemed and disabled."""
    total = session.scalar(select(func.count()).select_from(CodeBatch)) or 0
    rows = session.execute(
        _figures()
        .group_by(CodeBatch.id)
        .order_by(CodeBatch.created_at.desc(), CodeBatch.id)
        .limit(PAGE)
        .offset((max(page, 1) - 1) * PAGE)
    ).all()
    return [BatchFigures(b, r, d, Decimal(s)) for b, r, d, s in rows], total


def batch_figures(session: Session, batch_id: object) -> BatchFigures:
    """One batch with its figures; NotFound for an unknown or malformed id."""
    missing = NotFound(N_("There is no such batch of codes."))
    wanted = validation.uuid_of(batch_id, "batch_id", error=missing)
    row = session.execute(_figures().where(CodeBatch.id == wanted).group_by(CodeBatch.id)).one_or_none()
    if row is None:
        raise missing
    return BatchFigures(row[0], row[1], row[2], Decimal(row[3]))


def batch_csv(session: Session, admin: Context, batch_id: object, *, tz: ZoneInfo) -> tuple[str, bytes]:
    """A batch as CSV (UTF-8 with BOM, for Excel): code (XXXX-XXXX-XXXX-XXXX), amount, expires (the
    last day, or empty), status. The codes are money to whoever holds them: who downloaded them is
    audited (`codes.batch_downloaded`). Returns a file name and the bytes (10,000 codes: about 500 KB)."""
    batch, now = batch_figures(session, batch_id).batch, admin.now()
    with atomic(session):
        rows = session.execute(
            select(RedemptionCode, CodeBatch.disabled_at)
            .join(CodeBatch, CodeBatch.id == RedemptionCode.batch_id)
            .where(RedemptionCode.batch_id == batch.id)
            .order_by(RedemptionCode.code)
        ).all()
        record_audit(
            session,
            "codes.batch_downloaded",
            ctx=admin,
            user_id=admin.admin_id,
            details=admin.admin_details("download", batch_id=str(batch.id), count=len(rows)),
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    expires = last_day(batch.expires_at, tz)
    for code, batch_disabled in rows:
        status = status_of(code, batch_disabled, now)
        writer.writerow((shown(code.code), to_api(code.amount), expires.isoformat() if expires else "", status))
    name = f"codes_{batch.created_at.astimezone(tz):%Y%m%d}_{str(batch.id)[:8]}.csv"
    return name, ("\ufeff" + out.getvalue()).encode("utf-8")


def creator_of(session: Session, batch: CodeBatch) -> User | None:
    """The admin who made a batch (None: made with the command on the server)."""
    return session.get(User, batch.created_by) if batch.created_by else None


def disable_batch(session: Session, admin: Context, batch_id: object, *, reason: object) -> int:
    """Disable a whole batch: none of its codes can be redeemed any more (those redeemed stay so).
    Audited `codes.batch_disabled`. Returns how many unredeemed codes it stopped."""
    why = reason_of(reason)
    batch = preview_disable_batch(session, admin, batch_id).batch
    with atomic(session):
        done = session.execute(
            update(CodeBatch)
            .where(CodeBatch.id == batch.id, CodeBatch.disabled_at.is_(None))
            .values(disabled_at=func.now())
            .execution_options(synchronize_session=False)
        ).rowcount
        if not done:
            raise InvalidRequest(N_("Nothing to change: the batch is already disabled."), field="reason")
        stopped = _unredeemed(session, RedemptionCode.batch_id == batch.id)
        record_audit(
            session,
            "codes.batch_disabled",
            ctx=admin,
            user_id=admin.admin_id,
            details=admin.admin_details(why, batch_id=str(batch.id), unredeemed=stopped),
        )
    session.refresh(batch)
    return stopped


def preview_disable_batch(session: Session, admin: Context, batch_id: object) -> BatchFigures:
    """The batch to disable; InvalidRequest when it is disabled already."""
    figures = batch_figures(session, batch_id)
    if figures.batch.disabled_at is not None:
        raise InvalidRequest(N_("Nothing to change: the batch is already disabled."), field="reason")
    return figures


def _unredeemed(session: Session, *where: Any) -> int:
    return session.scalar(select(func.count()).where(*where, RedemptionCode.redeemed_by.is_(None))) or 0


def disable_code(session: Session, admin: Context, raw: object, *, reason: object) -> CodeView:
    """Disable one unredeemed code, audited `codes.code_disabled`; InvalidRequest when it is
    redeemed or disabled already."""
    why = reason_of(reason)
    view = preview_disable_code(session, admin, raw)
    with atomic(session):
        done = session.execute(
            update(RedemptionCode)
            .where(
                RedemptionCode.code == view.code.code,
                RedemptionCode.disabled_at.is_(None),
                RedemptionCode.redeemed_by.is_(None),
            )
            .values(disabled_at=func.now())
            .execution_options(synchronize_session=False)
        ).rowcount
        if not done:
            raise InvalidRequest(N_("Nothing to change: the code is redeemed or disabled already."), field="reason")
        record_audit(
            session,
            "codes.code_disabled",
            ctx=admin,
            user_id=admin.admin_id,
            details=admin.admin_details(why, code=view.code.code, batch_id=str(view.batch.id)),
        )
    return find_code(session, view.code.code, now=admin.now())


def preview_disable_code(session: Session, admin: Context, raw: object) -> CodeView:
    """`disable_code`'s check, without writing: the code to disable; CodeNotFound, or InvalidRequest
    when it is redeemed or disabled already."""
    view = find_code(session, raw, now=admin.now())
    if view.status in ("redeemed", "disabled"):
        raise InvalidRequest(N_("Nothing to change: the code is redeemed or disabled already."), field="reason")
    return view
