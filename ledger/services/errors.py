"""Exceptions the services raise. One error handler maps them to JSON errors and to pages.

Each carries the machine `code` and HTTP `status` of SPEC 6, so that every route answers a given
failure the same way.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


class LedgerError(Exception):
    code = "error"
    status = 400
    message = "The request could not be completed."

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.extra = extra


class InvalidRequest(LedgerError):
    code, status, message = "invalid_request", 422, "The request is not valid."


class Unauthorized(LedgerError):
    code, status, message = "unauthorized", 401, "Authentication is required."


class UserNotFound(LedgerError):
    code, status, message = "user_not_found", 404, "No user has this id."


class InsufficientBalance(LedgerError):
    code, status, message = "insufficient_balance", 402, "The balance is too low for this charge."

    def __init__(self, balance: Decimal) -> None:
        super().__init__(balance=balance)
        self.balance = balance


class RequestIdConflict(LedgerError):
    code, status = "request_id_conflict", 409
    message = "This request_id was already charged with another amount or model."


class EmailTaken(LedgerError):
    code, status, message = "email_taken", 409, "An account with this email already exists."


class InvalidCredentials(LedgerError):
    code, status, message = "invalid_credentials", 401, "Email or password is incorrect."


class UnknownModel(LedgerError):
    code, status, message = "unknown_model", 422, "There is no such model."


class InvalidTopupAmount(LedgerError):
    code, status, message = "invalid_amount", 422, "The amount is not valid."


class NotFound(LedgerError):
    code, status, message = "not_found", 404, "Not found."


class InvalidNotify(LedgerError):
    """A gateway notify that is refused: bad sign, missing fields, amount mismatch (answered 400)."""

    code, status, message = "invalid_notify", 400, "sign error"


class UnknownOrder(LedgerError):
    code, status, message = "unknown_order", 404, "unknown order"


class InviteCodeNotFound(LedgerError):
    code, status, message = "invite_code_not_found", 404, "No one has this invite code."


class AlreadyInvited(LedgerError):
    code, status, message = "already_invited", 409, "You already have an inviter."


class SelfInvite(LedgerError):
    code, status, message = "self_invite", 422, "You cannot use your own invite code."


class InviteCycle(LedgerError):
    code, status, message = "invite_cycle", 422, "This code belongs to someone you invited (directly or not)."


class InviteNotFound(LedgerError):
    code, status, message = "invite_not_found", 404, "This person was not invited by anyone."


class UsernameTaken(LedgerError):
    code, status, message = "username_taken", 409, "This username is taken."


class InvalidImage(LedgerError):
    code, status, message = "invalid_image", 422, "The file is not a PNG, JPEG or WebP image of at most 2 MB."
