"""The errors of the prompts domain; the API maps each class to one HTTP status."""

from __future__ import annotations

from collections.abc import Sequence


class PromptError(Exception):
    """Base of every prompts-domain failure, with the API error ``code`` and the ``field``."""

    code: str = "prompt_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidPrompt(PromptError):
    """A value is not acceptable (an invalid variable name, an unknown label…): 422."""

    code = "validation_error"


class MissingVariables(InvalidPrompt):
    """Rendering needs values for these variables: 422 naming every one."""

    code = "missing_variables"

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        listed = ", ".join(self.names)
        super().__init__(f"missing values for variables: {listed}", field="variables")


class PromptNotFound(PromptError):
    """No such prompt, version or label in the caller's tenant (another tenant's too): 404."""

    code = "not_found"


class NotPromptOwner(PromptError):
    """Only the prompt's owner may do this: 403."""

    code = "forbidden"


class PromptConflict(PromptError):
    """The request conflicts with the stored state (e.g. too many labels): 409."""

    code = "conflict"
