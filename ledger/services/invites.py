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
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, literal, select, text
from sqlalchemy.orm import Session

from ledger.config import Settings
from ledger.db import atomic
from ledger.models import InviteRelation, LedgerEntry, PaymentTransaction, User
from ledger.services.audit import Origin, record_audit
from ledger.services.billing import credit
from ledger.services.errors import AlreadyInvited, InviteCodeNotFound, InviteCycle, InviteNotFound, SelfInvite

# Bindings are rare; one transaction-level lock serialises them so that two people binding each
# other's codes at the same instant cannot both pass the loop check.
_BIND_LOCK_KEY = 0x1D517E  # any constant shared by every binding


@dataclass(frozen=True)
class Rewards:
    inviter: Decimal
    invitee: Decimal

    @classmethod
    def from_settings(cls, settings: Settings) -> Rewards:
        return cls(settings.INVITE_REWARD_INVITER, settings.INVITE_REWARD_INVITEE)

    @classmethod
    def on_first_topup(cls, settings: Settings) -> Rewards | None:
        """The rewards a first top-up pays, or None when INVITE_REWARD_ON_FIRST_TOPUP is off."""
        return cls.from_settings(settings) if settings.INVITE_REWARD_ON_FIRST_TOPUP else None


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


def normalise_code(raw: object) -> str:
    return raw.strip().lower() if isinstance(raw, str) else ""


def _find_inviter(session: Session, code: str) -> User:
    inviter = session.scalar(select(User).where(User.invite_code == code)) if 0 < len(code) <= 16 else None
    if inviter is None:
        raise InviteCodeNotFound()
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


def bind_invite(session: Session, *, invitee: User, code: object, origin: Origin) -> tuple[InviteRelation, User]:
    """Record that the person with invite `code` invited `invitee`, in a transaction of its own.

    Raises InviteCodeNotFound (404), SelfInvite (422), InviteCycle (422) when the code's owner was
    invited, directly or through others, by `invitee`, AlreadyInvited (409). Writes an audit row.
    """
    code = normalise_code(code)
    with atomic(session):
        return bind_in_transaction(session, invitee=invitee, code=code, origin=origin)


def bind_in_transaction(
    session: Session, *, invitee: User, code: object, origin: Origin
) -> tuple[InviteRelation, User]:
    """`bind_invite` inside the caller's transaction (sign-up binds where it creates the person)."""
    code = normalise_code(code)
    inviter = _find_inviter(session, code)
    if inviter.id == invitee.id:
        raise SelfInvite()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _BIND_LOCK_KEY})
    if session.scalar(select(InviteRelation.id).where(InviteRelation.invitee_id == invitee.id)) is not None:
        raise AlreadyInvited()
    if _ancestors_include(session, inviter.id, invitee.id):
        raise InviteCycle()
    relation = InviteRelation(id=uuid.uuid4(), inviter_id=inviter.id, invitee_id=invitee.id)
    session.add(relation)
    session.flush()
    record_audit(
        session,
        "invite.bound",
        origin=origin,
        user_id=invitee.id,
        details={"inviter_id": str(inviter.id), "code": code, "relation_id": str(relation.id)},
    )
    record_audit(
        session,
        "invite.gained",
        origin=origin,
        user_id=inviter.id,
        details={"invitee_id": str(invitee.id), "relation_id": str(relation.id)},
    )
    return relation, inviter


def _lock_relation_of(session: Session, invitee_id: uuid.UUID) -> InviteRelation | None:
    return session.scalars(
        select(InviteRelation)
        .where(InviteRelation.invitee_id == invitee_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def _pay(session: Session, relation: InviteRelation, rewards: Rewards, origin: Origin, trigger: str) -> None:
    """Credit both sides of a locked, unrewarded relation and mark it rewarded."""
    relation.rewarded_at = datetime.now(UTC)
    relation.inviter_reward, relation.invitee_reward = rewards.inviter, rewards.invitee
    sides = sorted(
        [(relation.inviter_id, rewards.inviter, "inviter"), (relation.invitee_id, rewards.invitee, "invitee")]
    )
    for user_id, amount, role in sides:  # accounts locked in a fixed (id) order
        if amount > 0:
            credit(
                session,
                user_id=user_id,
                amount=amount,
                kind="invite_reward",
                origin=origin,
                action="invite.rewarded",
                invite_relation=relation,
                details={"relation_id": str(relation.id), "role": role, "trigger": trigger},
            )


def reward_invite(session: Session, *, invitee_id: uuid.UUID, rewards: Rewards, origin: Origin) -> RewardOutcome:
    """Pay the invitation reward of `invitee_id` once (internal API); one transaction of its own.

    Raises InviteNotFound when nobody invited this person. A repeat answers already_rewarded.
    """
    with atomic(session):
        relation = _lock_relation_of(session, invitee_id)
        if relation is None:
            raise InviteNotFound()
        if relation.rewarded_at is not None:
            return RewardOutcome(False, True, relation.inviter_reward, relation.invitee_reward)
        _pay(session, relation, rewards, origin, trigger="api")
    return RewardOutcome(True, False, rewards.inviter, rewards.invitee)


def lock_first_topup_reward(session: Session, payment: PaymentTransaction) -> InviteRelation | None:
    """Inside a top-up's transaction, before its credit: the invitee's unrewarded relation, locked,
    if this payment is the person's first succeeded top-up (else None).

    Taking the relation lock before any account lock keeps the lock order of `reward_invite`.
    """
    earlier = session.scalar(
        select(func.count())
        .select_from(PaymentTransaction)
        .where(
            PaymentTransaction.user_id == payment.user_id,
            PaymentTransaction.status == "succeeded",
            PaymentTransaction.id != payment.id,
        )
    )
    if earlier:
        return None
    relation = _lock_relation_of(session, payment.user_id)
    return relation if relation is not None and relation.rewarded_at is None else None


def pay_first_topup_reward(session: Session, relation: InviteRelation, *, rewards: Rewards, origin: Origin) -> None:
    """Pay the reward locked by `lock_first_topup_reward`, in the same transaction as the top-up."""
    _pay(session, relation, rewards, origin, trigger="first_topup")


@dataclass(frozen=True)
class Invitee:
    masked_email: str
    invited_at: datetime
    rewarded_at: datetime | None
    inviter_reward: Decimal | None


@dataclass(frozen=True)
class InviteOverview:
    code: str
    inviter: str | None
    invitees: list[Invitee]
    invited_count: int
    rewards_total: Decimal


def invite_overview(session: Session, user: User, *, limit: int = 100) -> InviteOverview:
    """A person's invite code, their inviter, the people they invited and the rewards they earned."""
    rows = session.execute(
        select(User.email, InviteRelation.created_at, InviteRelation.rewarded_at, InviteRelation.inviter_reward)
        .join(User, User.id == InviteRelation.invitee_id)
        .where(InviteRelation.inviter_id == user.id)
        .order_by(InviteRelation.created_at.desc(), InviteRelation.id)
        .limit(limit)
    ).all()
    count = session.scalar(select(func.count()).select_from(InviteRelation).where(InviteRelation.inviter_id == user.id))
    total = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.user_id == user.id, LedgerEntry.kind == "invite_reward"
        )
    )
    inviter = session.scalar(
        select(User)
        .join(InviteRelation, InviteRelation.inviter_id == User.id)
        .where(InviteRelation.invitee_id == user.id)
    )
    return InviteOverview(
        code=user.invite_code,
        inviter=display_name(inviter) if inviter else None,
        invitees=[Invitee(mask_email(email), created, rewarded, reward) for email, created, rewarded, reward in rows],
        invited_count=count,
        rewards_total=Decimal(total),
    )
