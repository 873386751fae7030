"""Domain errors. Each carries a stable code; the server maps them to HTTP/websocket/CLI once."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every rule violation. ``code`` is stable; ``message`` is Vietnamese for users."""

    code = "domain_error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.detail = detail


class ValidationFailed(DomainError):
    code = "invalid_input"
    status = 400


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class Conflict(DomainError):
    code = "conflict"
    status = 409


class TooManyAttempts(DomainError):
    """Attempts come too fast (the login throttle); ``retry_after`` is the wait in whole seconds."""

    code = "login_throttled"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class ImportRejected(ValidationFailed):
    """A unit import refused as a whole; ``errors`` lists (line, message) pairs."""

    code = "import_rejected"

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        first = errors[0]
        more = f" (và {len(errors) - 1} lỗi khác)" if len(errors) > 1 else ""
        super().__init__(f"Dòng {first[0]}: {first[1]}{more}")
        self.errors = errors
