"""Low balance (SPEC 16): a person's threshold (their own, else the site's LOW_BALANCE_THRESHOLD),
one `balance.low` event each time a charge or a hold takes the available amount from at or above
it to below it, and the banner the pages show while it stays below.

No flag is kept: a crossing is seen in the transaction that makes it (the account is locked, the
available amount before and after are known), so the next one can only come after the amount has
gone back to the threshold or above. The banner follows the crossings: it shows to a person below
their threshold who has been taken below it by a charge or hold (a balance.low event), never to one
whose amount was never at it (a new person at ¥0, say).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ledger.config import Settings
from ledger.db import atomic
from ledger.errors import InvalidRequest, UserNotFound
from ledger.i18n import N_
from ledger.models import Event, EventType, User
from ledger.money import InvalidAmount, normalise_typed_amount, parse_amount, to_api
from ledger.services.audit import record_audit
from ledger.services.books.accounts import funds
from ledger.services.context import Context
from ledger.services.events import emit

SITE_DEFAULT = Settings.LOW_BALANCE_THRESHOLD  # the site's threshold when a context carries no settings
MAX_THRESHOLD = Decimal("100000.00")
ZERO = Decimal("0.00")


def site_threshold(ctx: Context) -> Decimal:
    """The site's LOW_BALANCE_THRESHOLD, from the context's settings (a context without: the default)."""
    return SITE_DEFAULT if ctx.settings is None else ctx.settings.LOW_BALANCE_THRESHOLD


def threshold(own: Decimal | None, site: Decimal) -> Decimal:
    """A person's threshold: their own, else the site's."""
    return site if own is None else own


def own_threshold(session: Session, user_id: uuid.UUID) -> Decimal | None:
    return session.scalar(select(User.low_balance_threshold).where(User.id == user_id))


def note_crossing(
    session: Session,
    *,
    user_id: uuid.UUID,
    limit: Decimal,
    before: Decimal,
    after: Decimal,
    balance: Decimal,
    **cause: object,
) -> bool:
    """In the caller's transaction: when the available amount went from `before` (at or above
    `limit`) to `after` (below it), add a balance.low event naming the `cause` (usage_id, hold_id)."""
    if not before >= limit > after:
        return False
    emit(session, EventType.BALANCE_LOW, user_id=user_id, balance=balance, available=after, threshold=limit, **cause)
    return True


def low_threshold(session: Session, user_id: uuid.UUID, site: Decimal, now: datetime) -> Decimal | None:
    """The pages' banner: the person's threshold while their available amount is below it and a
    charge or a hold once took it there (a balance.low event), else None. Going back to the
    threshold or above ends it; only the next crossing brings it back."""
    own = session.scalar(select(User.low_balance_threshold).where(User.id == user_id))
    try:
        available = funds(session, user_id, now).available
    except UserNotFound:
        return None
    limit = threshold(own, site)
    if available >= limit:
        return None
    crossed = select(Event.id).where(Event.user_id == user_id, Event.type == EventType.BALANCE_LOW).limit(1)
    return limit if session.scalar(crossed) is not None else None


def set_own_threshold(session: Session, user_id: uuid.UUID, raw: object, *, ctx: Context) -> Decimal | None:
    """Save the person's own threshold: an amount from 0.00 (never alert) up to 100,000.00, or empty
    for the site's. Raises InvalidRequest on the field `low_balance_threshold`."""
    typed = normalise_typed_amount(raw)
    own: Decimal | None = None
    if typed is not None and typed != "":
        try:
            own = ZERO if typed in ("0", "0.0", "0.00") else parse_amount(typed, places=2, maximum=MAX_THRESHOLD)
        except InvalidAmount:
            raise InvalidRequest(
                N_("Give an amount from 0.00 to 100000.00, or leave it empty for the site's."),
                field="low_balance_threshold",
            ) from None
    with atomic(session):
        session.execute(update(User).where(User.id == user_id).values(low_balance_threshold=own))
        shown = to_api(own) if own is not None else None
        record_audit(session, "profile.low_balance_threshold", ctx=ctx, user_id=user_id, details={"own": shown})
    return own
