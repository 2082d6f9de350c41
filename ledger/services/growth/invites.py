"""Invitations: who invited whom, and the reward that pays both sides once.

Binding refuses one's own code, a second inviter and any code that would close a loop. Rewards
go through the ledger core's `credit`, under the invite relation's row lock; the ledger's unique
(invite_relation_id, user_id) makes a second reward impossible even if that lock were forgotten.
Locks are always taken relation first, then billing accounts, so that the reward API and a
top-up paying the reward cannot deadlock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, literal, select, text
from sqlalchemy.orm import Session

from ledger import validation
from ledger.config import Settings
from ledger.db import atomic, lock
from ledger.errors import AlreadyInvited, InvalidRequest, InviteCodeNotFound, InviteCycle, InviteNotFound, SelfInvite
from ledger.i18n import N_
from ledger.models import (
    InviteRelation,
    LedgerEntry,
    LedgerKind,
    PaymentStatus,
    PaymentTransaction,
    UnrewardedReason,
    User,
)
from ledger.money import to_api
from ledger.services.audit import record_audit
from ledger.services.books.accounts import credit
from ledger.services.context import Context

# Bindings are rare; one transaction-level lock serialises them so that two people binding each
# other's codes at the same instant cannot both pass the loop check.
_BIND_LOCK_KEY = 0x1D517E  # any constant shared by every binding


@dataclass(frozen=True)
class RewardPolicy:
    """What an invitation pays each side, whether a first top-up pays it, and the limits against
    farming (SPEC 19): the one reading of the INVITE_REWARD_* settings."""

    inviter: Decimal
    invitee: Decimal
    on_first_topup: bool
    min_topup: Decimal = Decimal("10.00")
    max_per_month: int = 20

    @classmethod
    def of(cls, settings: Settings) -> RewardPolicy:
        return cls(
            settings.INVITE_REWARD_INVITER,
            settings.INVITE_REWARD_INVITEE,
            settings.INVITE_REWARD_ON_FIRST_TOPUP,
            settings.INVITE_REWARD_MIN_TOPUP,
            settings.INVITE_REWARD_MAX_PER_MONTH,
        )


@dataclass(frozen=True)
class RewardOutcome:
    rewarded: bool
    already_rewarded: bool
    inviter_reward: Decimal
    invitee_reward: Decimal


def mask_email(email: str) -> str:
    """ "alice@example.com" -> "a***@example.com": enough to recognise, not to harvest."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def display_name(user: User) -> str:
    return user.username or mask_email(user.email)


def typed_code(raw: object, field: str = "code") -> str:
    """An invite code as typed, as codes are stored: without surrounding spaces, in lower case.
    Raises InvalidRequest when there is none."""
    code = raw.strip().lower() if isinstance(raw, str) else ""
    if not code:
        raise InvalidRequest(N_("Enter an invite code."), field=field)
    return code


def _find_inviter(session: Session, raw: object, field: str) -> User:
    """The owner of an invite code as typed (case and surrounding spaces do not matter)."""
    code = typed_code(raw, field)
    # A code is short, plain text: anything else can belong to no one (and never reaches the database).
    plausible = len(code) <= 16 and validation.is_storable_text(code)
    inviter = session.scalar(select(User).where(User.invite_code == code)) if plausible else None
    if inviter is None:
        raise InviteCodeNotFound(field=field)
    return inviter


def _ancestors_include(session: Session, start: uuid.UUID, target: uuid.UUID) -> bool:
    """Does `target` appear in the chain of inviters above `start` (start included)?"""
    chain = (
        select(InviteRelation.inviter_id.label("person"), literal(1).label("depth"))
        .where(InviteRelation.invitee_id == start)
        .cte("chain", recursive=True)
    )
    chain = chain.union_all(
        select(InviteRelation.inviter_id, chain.c.depth + 1)
        .join(chain, InviteRelation.invitee_id == chain.c.person)
        .where(chain.c.depth < 10_000)  # a bound on a chain that the loop check keeps acyclic anyway
    )
    return start == target or session.scalar(select(func.count()).where(chain.c.person == target)) > 0


def bind_invite(session: Session, *, invitee: User, code: object, ctx: Context) -> tuple[InviteRelation, User]:
    """Record that the person with invite `code` invited `invitee`, in a transaction of its own.

    Raises InvalidRequest (no code), InviteCodeNotFound (404), SelfInvite (422), InviteCycle (422)
    when the code's owner was invited, directly or through others, by `invitee`, AlreadyInvited
    (409). Writes an audit row.
    """
    with atomic(session):
        return bind_in_transaction(session, invitee=invitee, code=code, ctx=ctx)


def bind_in_transaction(
    session: Session, *, invitee: User, code: object, ctx: Context, field: str = "code"
) -> tuple[InviteRelation, User]:
    """`bind_invite` inside the caller's transaction (sign-up binds where it creates the person).
    `field` names the input that carried the code, for the error."""
    inviter = _find_inviter(session, code, field)
    if inviter.id == invitee.id:
        raise SelfInvite(field=field)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _BIND_LOCK_KEY})
    if session.scalar(select(InviteRelation.id).where(InviteRelation.invitee_id == invitee.id)) is not None:
        raise AlreadyInvited(field=field)
    if _ancestors_include(session, inviter.id, invitee.id):
        raise InviteCycle(field=field)
    relation = InviteRelation(id=uuid.uuid4(), inviter_id=inviter.id, invitee_id=invitee.id)
    session.add(relation)
    session.flush()
    record_audit(
        session,
        "invite.bound",
        ctx=ctx,
        user_id=invitee.id,
        details={"inviter_id": str(inviter.id), "code": inviter.invite_code, "relation_id": str(relation.id)},
    )
    record_audit(
        session,
        "invite.gained",
        ctx=ctx,
        user_id=inviter.id,
        details={"invitee_id": str(invitee.id), "relation_id": str(relation.id)},
    )
    return relation, inviter


def _pay(session: Session, relation: InviteRelation, rewards: RewardPolicy, ctx: Context, trigger: str) -> None:
    """Credit both sides of a locked, unrewarded relation and mark it rewarded."""
    relation.rewarded_at = ctx.now()
    relation.inviter_reward, relation.invitee_reward = rewards.inviter, rewards.invitee
    relation.unrewarded_reason = None  # the SaaS may pay by the API what a first top-up did not
    sides = sorted(
        [(relation.inviter_id, rewards.inviter, "inviter"), (relation.invitee_id, rewards.invitee, "invitee")]
    )
    for user_id, amount, role in sides:  # accounts locked in a fixed (id) order
        if amount > 0:
            credit(
                session,
                user_id=user_id,
                amount=amount,
                kind=LedgerKind.INVITE_REWARD,
                ctx=ctx,
                action="invite.rewarded",
                invite_relation=relation,
                details={"relation_id": str(relation.id), "role": role, "trigger": trigger},
            )


def reward_invite(session: Session, *, invitee_id: object, ctx: Context) -> RewardOutcome:
    """Pay the invitation reward of `invitee_id` once (internal API); one transaction of its own.

    Raises InvalidRequest (not a UUID), InviteNotFound when nobody invited this person. A repeat
    answers already_rewarded.
    """
    invitee = validation.uuid_of(invitee_id, "invitee_id")
    rewards = RewardPolicy.of(ctx.config)
    with atomic(session):
        relation = lock(session, InviteRelation, InviteRelation.invitee_id == invitee)
        if relation is None:
            raise InviteNotFound()
        if relation.rewarded_at is not None:
            return RewardOutcome(False, True, relation.inviter_reward, relation.invitee_reward)
        _pay(session, relation, rewards, ctx, trigger="api")
    return RewardOutcome(True, False, rewards.inviter, rewards.invitee)


def lock_first_topup_reward(session: Session, payment: PaymentTransaction, ctx: Context) -> InviteRelation | None:
    """Inside a top-up's transaction, before its credit: the invitee's unrewarded relation, locked,
    if the policy pays rewards with a first top-up and this is the person's first (else None).

    Taking the relation lock, then the inviter's reward lock, before any account lock keeps the lock
    order of `reward_invite`; the inviter's lock makes their monthly count exact under concurrency.
    """
    if not RewardPolicy.of(ctx.config).on_first_topup:
        return None
    relation = lock(session, InviteRelation, InviteRelation.invitee_id == payment.user_id)
    if relation is None or relation.rewarded_at is not None or relation.unrewarded_reason is not None:
        return None  # rewarded, or a first top-up already paid nothing: a later one never pays it
    earlier = session.scalar(  # counted under the relation's lock: two top-ups settling at once see each other
        select(func.count())
        .select_from(PaymentTransaction)
        .where(
            PaymentTransaction.user_id == payment.user_id,
            PaymentTransaction.status == PaymentStatus.SUCCEEDED,
            PaymentTransaction.id != payment.id,
        )
    )
    if earlier:
        return None
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"invite-rewards:{relation.inviter_id}"},
    )
    return relation


def pay_first_topup_reward(
    session: Session, relation: InviteRelation, payment: PaymentTransaction, *, ctx: Context
) -> None:
    """Pay the reward locked by `lock_first_topup_reward`, in the same transaction as the top-up,
    unless the top-up is below INVITE_REWARD_MIN_TOPUP or the inviter was already rewarded
    INVITE_REWARD_MAX_PER_MONTH times in 30 days: then neither side is (a reward is a pair), the
    relation keeps why, and an audit row says so."""
    rewards = RewardPolicy.of(ctx.config)
    reason: UnrewardedReason | None = None
    if payment.amount < rewards.min_topup:
        reason = UnrewardedReason.FIRST_TOPUP_TOO_SMALL
    elif rewards_in_30_days(session, relation.inviter_id, ctx.now()) >= rewards.max_per_month:
        reason = UnrewardedReason.MONTHLY_LIMIT
    if reason is None:
        _pay(session, relation, rewards, ctx, trigger="first_topup")
        return
    relation.unrewarded_reason = reason
    record_audit(
        session,
        "invite.not_rewarded",
        ctx=ctx,
        user_id=relation.invitee_id,
        details={
            "relation_id": str(relation.id),
            "inviter_id": str(relation.inviter_id),
            "reason": reason.value,
            "topup": to_api(payment.amount),
        },
    )


def rewards_in_30_days(session: Session, inviter_id: uuid.UUID, now: datetime) -> int:
    """How many invitations rewarded this inviter in the 30 days to `now` (by a first top-up or the API)."""
    since = now - timedelta(days=30)
    return session.scalar(
        select(func.count()).where(InviteRelation.inviter_id == inviter_id, InviteRelation.rewarded_at >= since)
    )


@dataclass(frozen=True)
class Invitee:
    masked_email: str
    invited_at: datetime
    rewarded_at: datetime | None
    inviter_reward: Decimal | None
    unrewarded_reason: UnrewardedReason | None = None  # the binding stands, but earned nothing


@dataclass(frozen=True)
class InviteOverview:
    code: str
    inviter: str | None
    invitees: list[Invitee]
    invited_count: int
    rewards_total: Decimal
    own_unrewarded_reason: UnrewardedReason | None = None  # why being invited earned this person nothing


def invite_overview(session: Session, user: User, *, limit: int = 100) -> InviteOverview:
    """A person's invite code, their inviter, the people they invited and the rewards they earned."""
    rows = session.execute(
        select(
            User.email,
            InviteRelation.created_at,
            InviteRelation.rewarded_at,
            InviteRelation.inviter_reward,
            InviteRelation.unrewarded_reason,
        )
        .join(User, User.id == InviteRelation.invitee_id)
        .where(InviteRelation.inviter_id == user.id)
        .order_by(InviteRelation.created_at.desc(), InviteRelation.id)
        .limit(limit)
    ).all()
    count = session.scalar(select(func.count()).select_from(InviteRelation).where(InviteRelation.inviter_id == user.id))
    total = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.user_id == user.id, LedgerEntry.kind == LedgerKind.INVITE_REWARD
        )
    )
    mine = session.execute(
        select(User, InviteRelation.unrewarded_reason)
        .join(InviteRelation, InviteRelation.inviter_id == User.id)
        .where(InviteRelation.invitee_id == user.id)
    ).first()
    return InviteOverview(
        code=user.invite_code,
        inviter=display_name(mine[0]) if mine else None,
        invitees=[Invitee(mask_email(row[0]), *row[1:]) for row in rows],
        invited_count=count,
        rewards_total=Decimal(total),
        own_unrewarded_reason=mine[1] if mine else None,
    )
