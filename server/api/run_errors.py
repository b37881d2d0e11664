"""Provider and run errors as API errors: the one place that gives each its HTTP status.

Used for JSON answers and, with the same code and message, for the ``error`` events of streams.
A provider failure is never a 500: auth → 502 ``provider_auth``, rate limited → 429 with
``Retry-After``, timeout → 504, unreachable or a bad answer → 502, context too long → 422.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.responses import JSONResponse

from server.errors import ApiError, Forbidden, NotFound, ValidationFailed, error_response
from server.llm import base as llm
from server.runs import errors as runs


class RunApiError(ApiError):
    """An API error that may carry a ``Retry-After`` and the id of the run it was recorded on."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        run_id: int | None = None,
    ) -> None:
        super().__init__(message, field=field, code=code)
        self.retry_after = None if retry_after is None else max(1, math.ceil(retry_after))
        self.run_id = run_id

    def payload(self) -> dict[str, Any]:
        """The error object (as in ``{"error": …}``), for a stream's ``error`` event."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.run_id is not None:
            body["run_id"] = self.run_id
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        return body

    def to_response(self) -> JSONResponse:
        """The error in the shared shape, with ``Retry-After`` when there is one."""
        extra: dict[str, Any] = {}
        if self.run_id is not None:
            extra["run_id"] = self.run_id
        response = error_response(self.status, self.code, self.message, field=self.field, **extra)
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response


class BadGateway(RunApiError):
    """502: the provider refused our credentials, failed, or answered nonsense."""

    status = 502
    code = "provider_unavailable"


class GatewayTimeout(RunApiError):
    """504: the provider did not answer in time."""

    status = 504
    code = "provider_timeout"


class TooManyRequests(RunApiError):
    """429: the provider rate limits us, or the tenant's daily quota is used up."""

    status = 429
    code = "provider_rate_limited"


class Unprocessable(RunApiError):
    """422: the request cannot be run (context too long, unknown model, refused parameters)."""

    status = 422
    code = "validation_error"


class ServiceUnavailable(RunApiError):
    """503: the tenant's provider key cannot be opened on this server."""

    status = 503
    code = "provider_key_unavailable"


_PROVIDER_STATUS: dict[type[llm.ProviderError], type[RunApiError]] = {
    llm.ProviderAuthError: BadGateway,
    llm.ProviderRateLimited: TooManyRequests,
    llm.ProviderTimeout: GatewayTimeout,
    llm.ProviderUnavailable: BadGateway,
    llm.ProviderBadResponse: BadGateway,
    llm.ContextTooLong: Unprocessable,
    llm.UnknownModel: Unprocessable,
    llm.ProviderRejectedRequest: Unprocessable,
}


def provider_api_error(error: llm.ProviderError, *, run_id: int | None = None) -> RunApiError:
    """The API error of a provider failure (``code`` is the provider error's own)."""
    cls: type[RunApiError] = BadGateway
    for kind in type(error).__mro__:
        if kind in _PROVIDER_STATUS:
            cls = _PROVIDER_STATUS[kind]
            break
    retry_after = error.retry_after if isinstance(error, llm.ProviderRateLimited) else None
    field = "model" if isinstance(error, llm.UnknownModel) else None
    return cls(error.message, code=error.code, field=field, retry_after=retry_after, run_id=run_id)


def run_api_error(error: runs.RunError) -> ApiError:
    """The API error of a runs-domain refusal."""
    if isinstance(error, runs.QuotaExceeded):
        return TooManyRequests(error.message, code=error.code, retry_after=error.retry_after)
    if isinstance(error, runs.ProviderKeyUnavailable):
        return ServiceUnavailable(error.message, code=error.code)
    if isinstance(error, runs.RunNotFound):
        return NotFound(error.message, field=error.field)
    if isinstance(error, runs.RunForbidden):
        return Forbidden(error.message, field=error.field)
    return ValidationFailed(error.message, field=error.field, code=error.code)


@contextmanager
def run_errors() -> Iterator[None]:
    """Turn domain and provider errors raised inside the block into API errors."""
    try:
        yield
    except runs.RunError as error:
        raise run_api_error(error) from error
    except llm.ProviderError as error:
        raise provider_api_error(error) from error
