"""Domain errors. Each knows its HTTP status and its stable machine-readable `code`; the API
renders them as problem+json in one handler (`api/errors.py`)."""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str | None = None, *, errors: dict[str, list[str]] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors


class NotFoundError(DomainError):
    status = 404
    code = "not_found"
    title = "Not found"


class ConflictError(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class ValidationError(DomainError):
    status = 422
    code = "validation_error"
    title = "Validation failed"


class InvalidGeometryError(ValidationError):
    code = "invalid_geometry"
    title = "Invalid geometry"


class HandleTakenError(ConflictError):
    code = "handle_taken"
    title = "Handle taken"


class IllegalTransitionError(ConflictError):
    code = "illegal_transition"
    title = "Illegal status change"


class UnauthorizedError(DomainError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class TooManyAttemptsError(DomainError):
    """Too many wrong guesses of a secret (a code, a password) in a sliding window: refused
    before it is checked, answered 429 with `Retry-After` (seconds until the window lets one
    more through)."""

    status = 429
    code = "too_many_attempts"
    title = "Too many attempts"

    def __init__(self, detail: str, retry_after_s: int):
        super().__init__(detail)
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(retry_after_s)}


class ForbiddenError(DomainError):
    status = 403
    code = "forbidden"
    title = "Forbidden"
