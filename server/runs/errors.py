"""The errors of the runs domain; the API maps each class to one HTTP status."""

from __future__ import annotations


class RunError(Exception):
    """Base of every runs-domain failure, with the API error ``code`` and the ``field``."""

    code: str = "run_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidRunInput(RunError):
    """The request cannot be run as given (no source, two sources, a missing variable): 422."""

    code = "validation_error"


class MissingRunVariables(InvalidRunInput):
    """Rendering needs values for these variables: 422 naming every one."""

    code = "missing_variables"

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(f"missing values for variables: {', '.join(names)}", field="variables")


class RunNotFound(RunError):
    """No such run, version, prompt or session in the caller's tenant: 404."""

    code = "not_found"


class RunForbidden(RunError):
    """The caller may not run this (not a member of the session): 403."""

    code = "forbidden"


class QuotaExceeded(RunError):
    """The tenant's ``quotas.runsPerDay`` is used up: 429 until the UTC day turns."""

    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderKeyUnavailable(RunError):
    """The tenant's sealed provider key cannot be opened (no or another secret key): 503."""

    code = "provider_key_unavailable"
