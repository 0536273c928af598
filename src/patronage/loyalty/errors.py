"""Errors of the membership system, each with its HTTP meaning."""

from __future__ import annotations

from patronage.errors import ConflictError, NotFoundError, PatronageError


class InsufficientPointsError(ConflictError):
    """A debit asked for more points than the member can spend."""

    title = "Insufficient points"


class IdempotencyKeyReusedError(ConflictError):
    """The same idempotency key came back with a different request."""

    title = "Idempotency key reused"


class MissingIdempotencyKeyError(PatronageError):
    """A mutation came without the `Idempotency-Key` header."""

    status_code = 400
    title = "Idempotency key required"


class ProgramNotConfiguredError(NotFoundError):
    """The store has no membership program yet."""

    title = "No membership program"


class CouponNotRedeemableError(ConflictError):
    """The coupon is used, expired or unknown."""

    title = "Coupon not redeemable"
