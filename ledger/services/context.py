"""What every operation is given beside its raw input: who acts, from where, when, and under which
settings.

`(session, ctx, raw input) -> result` is the shape of every operation (STYLE.md): a page, an API
route, a command, a job and a test build a Context and call the same function. The clock is the
context's, so a test moves time by giving another clock, and no service reads the wall clock itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ledger import validation
from ledger.config import Settings
from ledger.i18n import N_
from ledger.models import Actor

USER_AGENT_MAX = 512  # what the audit and session rows keep
REASON_MAX = 500  # an admin action's reason


CLOCK = "ledger.clock"  # app.extensions[CLOCK]: the operations' clock of an app (tests stop or move it)


def utc_now() -> datetime:
    return datetime.now(UTC)


def app_clock(extensions: Mapping[str, Any]) -> Callable[[], datetime]:
    """The clock of an app (its `extensions`): the wall clock, unless a test set another."""
    return extensions.get(CLOCK, utc_now)


@dataclass(frozen=True)
class Context:
    """The actor of SPEC 3 and, for people, their IP and browser (its user agent cut to what the
    audit and session rows keep); the clock; in the back office, the admin and the way they came;
    the app's settings."""

    actor: Actor = Actor.SYSTEM
    ip: str | None = None
    user_agent: str | None = None
    clock: Callable[[], datetime] = field(default=utc_now, compare=False, repr=False)
    admin_id: uuid.UUID | None = None  # the admin who acts (None with `via="cli"`: the server's console)
    via: str = "web"
    settings: Settings | None = field(default=None, compare=False, repr=False)  # the app's

    def __post_init__(self) -> None:
        if self.user_agent is not None:
            # cut, and storable: a header may carry a NUL
            object.__setattr__(self, "user_agent", validation.storable_text(self.user_agent, USER_AGENT_MAX) or None)

    def now(self) -> datetime:
        """The time of the operation: timezone-aware UTC, from the context's clock."""
        return self.clock()

    @property
    def config(self) -> Settings:
        """The app's settings, for the operations that read them (limits, rewards, the gateway's id)."""
        if self.settings is None:
            raise RuntimeError("this operation reads the app's settings: give its context settings=")
        return self.settings

    def using(self, settings: Settings) -> Context:
        """The same context with the app's settings."""
        return replace(self, settings=settings)

    def at(self, when: datetime) -> Context:
        """The same context with a stopped clock (tests; a job's run at its scheduled time)."""
        utc = when.astimezone(UTC)
        return replace(self, clock=lambda: utc)

    def as_admin(self, admin_id: uuid.UUID | None, via: str = "web") -> Context:
        """The same caller acting in the back office."""
        return replace(self, actor=Actor.ADMIN, admin_id=admin_id, via=via)

    def admin_details(self, reason: str, **more: object) -> dict[str, object]:
        """An admin action's audit details: who (the admin's id), how (web or cli) and why."""
        return {"admin_id": str(self.admin_id) if self.admin_id else None, "via": self.via, "reason": reason, **more}


SYSTEM = Context(Actor.SYSTEM)
INTERNAL = Context(Actor.INTERNAL)
XORPAY = Context(Actor.XORPAY)


def reason_of(raw: object) -> str:
    """An admin action's reason: required, 1 to 500 characters."""
    return validation.text(raw, "reason", max_length=REASON_MAX, message=N_("Say why (1 to 500 characters)."))
