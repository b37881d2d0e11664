"""The server's error hierarchy and the one JSON shape every error takes.

Each error class maps to exactly one HTTP status; handlers in :mod:`server.app` turn them into
``{"error": {"code": ..., "message": ..., "field": ...}}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from starlette.responses import JSONResponse


class ApiError(Exception):
    """Base class for errors shown to API clients."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code  # type: ignore[misc]

    def to_response(self) -> JSONResponse:
        """Render this error in the shared JSON shape."""
        return error_response(self.status, self.code, self.message, field=self.field)


class BadRequest(ApiError):
    """The request cannot be parsed (malformed JSON, wrong content type)."""

    status = 400
    code = "bad_request"


class ValidationFailed(ApiError):
    """The request parsed but a field is missing or has a bad value."""

    status = 422
    code = "validation_error"


class Unauthenticated(ApiError):
    """No credentials, or credentials that are unknown or expired."""

    status = 401
    code = "unauthenticated"


class Forbidden(ApiError):
    """Authenticated, but not allowed to do this."""

    status = 403
    code = "forbidden"


class NotFound(ApiError):
    """Unknown id — or an id that belongs to another tenant (never distinguishable)."""

    status = 404
    code = "not_found"


class Conflict(ApiError):
    """The request conflicts with existing data (a duplicate, a stale state)."""

    status = 409
    code = "conflict"


class Gone(ApiError):
    """The resource existed but is no longer usable (a deactivated session)."""

    status = 410
    code = "gone"


class Unavailable(ApiError):
    """A dependency (database, Redis, the model provider) is not reachable."""

    status = 503
    code = "unavailable"


def error_response(
    status: int, code: str, message: str, *, field: str | None = None, **extra: Any
) -> JSONResponse:
    """Build the one JSON error shape used by every endpoint."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSONResponse({"error": body}, status_code=status)
