"""LedgerError: how every operation says no.

Each error carries the machine `code` and HTTP `status` of SPEC 6 and a message marked for
translation, with parameters (`details`) that also travel in the JSON error body. One handler
(ledger.web.errors) turns an error into `{"error": {...}}` for APIs and into a translated form error
or error page for pages, so that a failure reads the same wherever it happens.

An error may carry an audit row to keep (`audit_row`, set by services.audit.refusal): `db.atomic`
rolls the operation back, then commits that row on its own (a refused charge or notify leaves a
trace and nothing else).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from flask_babel import gettext

from ledger.i18n import N_

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from ledger.models import AuditLog


class LedgerError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    message: str = N_("This request could not be completed.")

    def __init__(self, message: str | None = None, *, field: str | None = None, **details: Any) -> None:
        if message is not None:
            self.message = message
        self.field = field
        self.details = details
        self.audit_row: AuditLog | None = None
        # What the refusal keeps besides its audit row, after the rollback (an event it causes).
        self.also_keep: Callable[[Session], None] | None = None
        super().__init__(self.message % _display(details) if details else self.message)

    def translated(self) -> str:
        """The message in the person's language (English outside a request), parameters filled in."""
        return gettext(self.message, **_display(self.details))


def _display(details: dict[str, Any]) -> dict[str, Any]:
    """Parameters as a message shows them: money as "1,234.50"."""
    from ledger.money import format_amount  # money's parsing raises these errors: imported late

    return {k: format_amount(v) if isinstance(v, Decimal) else v for k, v in details.items()}


# --- 4xx of every route ---------------------------------------------------------------------------


class InvalidRequest(LedgerError):
    code, status = "invalid_request", 422
    message = N_("The request is not valid.")


class Unauthorized(LedgerError):
    code, status = "unauthorized", 401
    message = N_("Sign in, or send the right x-internal-token header.")


class NotFound(LedgerError):
    code, status = "not_found", 404
    message = N_("This does not exist, or it is not yours.")


class UnsupportedMediaType(LedgerError):
    code, status = "unsupported_media_type", 415
    message = N_("Send this form as a web form (application/x-www-form-urlencoded or multipart/form-data).")


# --- people --------------------------------------------------------------------------------------


class EmailTaken(LedgerError):
    code, status = "email_taken", 409
    message = N_("An account with this email already exists. Sign in instead?")


class InvalidCredentials(LedgerError):
    code, status = "invalid_credentials", 401
    message = N_("Email or password is incorrect.")


class WrongPassword(LedgerError):
    code, status = "invalid_credentials", 401
    message = N_("The current password is not right.")


class UsernameTaken(LedgerError):
    code, status = "username_taken", 409
    message = N_("This username is taken.")


class InvalidImage(LedgerError):
    code, status = "invalid_image", 422
    message = N_("Choose a PNG, JPEG or WebP image of at most 2 MB.")


# --- money ---------------------------------------------------------------------------------------


class AccountDisabled(LedgerError):
    code, status = "account_disabled", 403
    message = N_("This account is disabled.")


class UserNotFound(LedgerError):
    code, status = "user_not_found", 404
    message = N_("No user has this id.")


class UserConflict(LedgerError):
    code, status = "user_conflict", 409
    message = N_("This email or external_id belongs to another account.")


class AdminAccount(LedgerError):
    code, status = "admin_account", 403
    message = N_("Portal links are not made for admins: they sign in with their password.")


class PortalLinkUnusable(LedgerError):
    code, status = "portal_link_unusable", 410
    message = N_("This sign-in link has expired or has been used. Go back to the app and open it again, or sign in.")


class InsufficientBalance(LedgerError):
    """The available amount (balance - held) is short: SPEC 6 and 11 carry both figures."""

    code, status = "insufficient_balance", 402
    message = N_("The available balance (¥%(available)s) is too low for this charge.")

    def __init__(self, balance: Decimal, available: Decimal) -> None:
        super().__init__(balance=balance, available=available)
        self.balance, self.available = balance, available


class SpendingLimitReached(LedgerError):
    """A request that would take a period's spending over its limit (SPEC 22): the limit, what the
    period spent before it, and when the period ends."""

    code, status = "spending_limit_reached", 402
    message = N_("This would pass your daily spending limit of ¥%(limit)s (¥%(spent)s spent today).")
    monthly = N_("This would pass your monthly spending limit of ¥%(limit)s (¥%(spent)s spent this month).")

    def __init__(self, period: Any, limit: Decimal, spent: Decimal, resets_at: Any) -> None:
        if str(period) == "month":
            self.message = self.monthly
        super().__init__(limit=limit, spent=spent, period=str(period), resets_at=resets_at.isoformat())


class InsufficientBalanceToHold(InsufficientBalance):
    """A hold the available amount cannot cover: the same refusal (402 insufficient_balance), worded for a hold."""

    message = N_("The available balance (¥%(available)s) is too low to hold this amount.")


class RequestIdConflict(LedgerError):
    code, status = "request_id_conflict", 409
    message = N_("This request_id was already charged with another amount or model.")


class HoldNotFound(LedgerError):
    code, status = "hold_not_found", 404
    message = N_("There is no such hold.")


class HoldSettled(LedgerError):
    code, status = "hold_settled", 409
    message = N_("This hold is already settled (captured, released or expired).")


class CaptureExceedsHold(LedgerError):
    code, status = "capture_exceeds_hold", 422
    message = N_("The capture (¥%(amount)s) is more than the hold (¥%(held)s).")


class UnknownModel(LedgerError):
    code, status = "unknown_model", 422
    message = N_("There is no such model.")


class InvalidTopupAmount(LedgerError):
    code, status = "invalid_amount", 422
    message = N_("Enter an amount from ¥%(minimum)s to ¥%(maximum)s with at most 2 decimals.")


class InvalidNotify(LedgerError):
    """A gateway notify that is refused: bad sign, missing fields, amount or aoid mismatch (400).

    Its messages are XorPay's to read (the webhook answers them as plain text), not a person's:
    they are not translated.
    """

    code, status = "invalid_notify", 400
    message = "sign error"


class TooManyNotifyRefusals(LedgerError):
    """More refused notifies from one address than RATELIMIT_WEBHOOK_REFUSALS allows: answered
    without reading further or writing anything (a valid notify is never counted). XorPay's to read."""

    code, status = "too_many_requests", 429
    message = "too many refused notifies"


class UnknownOrder(LedgerError):
    code, status = "unknown_order", 404
    message = "unknown order"


class InvalidRange(LedgerError):
    code, status = "invalid_range", 422
    message = N_("The date range is not valid.")


# --- redemption codes and refunds ------------------------------------------------------------------


class CodeNotFound(LedgerError):
    code, status = "code_not_found", 404
    message = N_("There is no such code. Check it and try again.")


class CodeUsed(LedgerError):
    code, status = "code_used", 409
    message = N_("This code has already been used.")


class CodeExpired(LedgerError):
    code, status = "code_expired", 410
    message = N_("This code has expired.")


class CodeDisabled(LedgerError):
    code, status = "code_disabled", 410
    message = N_("This code is no longer valid.")


class TooManyCodeTries(LedgerError):
    code, status = "too_many_requests", 429
    message = N_("Too many unknown codes. Please wait an hour and try again.")


class TooManyPendingOrders(LedgerError):
    """TOPUP_MAX_PENDING unpaid orders are open (SPEC 19): each is a gateway call, and reconcile asks
    about every one."""

    code, status = "too_many_pending_orders", 429
    message = N_(
        "You have %(count)d unpaid top-up orders. Pay one of them, or start a new one when they expire"
        " (%(minutes)d minutes after they were made)."
    )


class RefundRefused(LedgerError):
    """A refund the books do not allow: more than refundable or available, the 51st, a pending one."""

    code, status = "refund_refused", 409
    message = N_("This refund is not possible.")


# --- invitations ---------------------------------------------------------------------------------


class InviteCodeNotFound(LedgerError):
    code, status = "invite_code_not_found", 404
    message = N_("No one has this invite code. Check it and try again.")


class AlreadyInvited(LedgerError):
    code, status = "already_invited", 409
    message = N_("You already have an inviter.")


class SelfInvite(LedgerError):
    code, status = "self_invite", 422
    message = N_("This is your own invite code: share it with friends instead.")


class InviteCycle(LedgerError):
    code, status = "invite_cycle", 422
    message = N_("This code belongs to someone you invited, so it cannot be your inviter.")


class InviteNotFound(LedgerError):
    code, status = "invite_not_found", 404
    message = N_("This person was not invited by anyone.")


# --- plans (SPEC 21) -------------------------------------------------------------------------------


class PlanNotFound(LedgerError):
    code, status = "plan_not_found", 404
    message = N_("There is no such plan.")


class PlanRetired(LedgerError):
    code, status = "plan_retired", 410
    message = N_("This plan is no longer sold.")


class SubscriptionNotFound(LedgerError):
    code, status = "subscription_not_found", 404
    message = N_("There is no such subscription.")


class AlreadySubscribed(LedgerError):
    """A second subscribe to a plan the person holds (active or cancelled): nothing is charged; the
    subscription they hold is named."""

    code, status = "already_subscribed", 409
    message = N_("You already have this plan.")

    def __init__(self, subscription_id: object) -> None:
        super().__init__(subscription_id=str(subscription_id))
