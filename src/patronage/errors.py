"""One error hierarchy; each error carries its HTTP meaning and is rendered as problem+json."""

from __future__ import annotations

from typing import Any


class PatronageError(Exception):
    """Base of every error the domain raises on purpose."""

    status_code: int = 400
    title: str = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFoundError(PatronageError):
    """The thing does not exist, or belongs to another store."""

    status_code = 404
    title = "Not found"


class AuthenticationError(PatronageError):
    """Missing or wrong credentials."""

    status_code = 401
    title = "Unauthorized"


class ValidationFailedError(PatronageError):
    """Input that cannot be accepted as it is."""

    status_code = 422
    title = "Unprocessable content"


class ConflictError(PatronageError):
    """The request conflicts with the current state."""

    status_code = 409
    title = "Conflict"
