"""Shaping prompts-domain results into the API's bodies, and its errors into API errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse

from server.api.schemas import prompts as schemas
from server.api.types import error_responses
from server.cache.rules import InvalidationOutcome
from server.cache.service import SemanticCacheService
from server.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    ValidationFailed,
    error_response,
)
from server.prompts.context import PromptLimits
from server.prompts.errors import (
    InvalidPrompt,
    MissingVariables,
    NotPromptOwner,
    PromptConflict,
    PromptError,
    PromptNotFound,
)
from server.prompts.service import SavedVersion, VersionInput
from server.settings import Settings
from storage.models import Prompt, PromptVersion


class MissingVariablesError(ValidationFailed):
    """422 ``missing_variables``, listing every missing name in ``missing``."""

    code = "missing_variables"

    def __init__(self, names: list[str], message: str) -> None:
        super().__init__(message, field="variables")
        self.missing = names

    def to_response(self) -> JSONResponse:
        """The usual error shape, plus the list of missing variables."""
        return error_response(
            self.status, self.code, self.message, field=self.field, missing=self.missing
        )


_ERRORS: dict[type[PromptError], type[ApiError]] = {
    InvalidPrompt: ValidationFailed,
    PromptNotFound: NotFound,
    NotPromptOwner: Forbidden,
    PromptConflict: Conflict,
}
#: The ``responses=`` of a route that goes through :func:`domain_errors` (422 is on every route).
DOMAIN_ERRORS = error_responses(403, 404, 409)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn the prompts domain's errors into the API's (one place for the mapping)."""
    try:
        yield
    except MissingVariables as exc:
        raise MissingVariablesError(exc.names, exc.message) from exc
    except PromptError as exc:
        api_error = next(
            (api for kind, api in _ERRORS.items() if isinstance(exc, kind)), ValidationFailed
        )
        raise api_error(exc.message, field=exc.field) from exc


def limits_of(settings: Settings) -> PromptLimits:
    """The prompts limits configured for this server."""
    return PromptLimits(
        max_text_chars=settings.prompt_max_text_chars,
        max_variables=settings.prompt_max_variables,
        max_labels=settings.prompt_max_labels,
        max_import_versions=settings.prompt_import_max_versions,
        save_attempts=settings.prompt_save_attempts,
    )


def version_input(body: schemas.VersionCreate) -> VersionInput:
    """A version body as the domain takes it."""
    config = body.llm_config
    return VersionInput(
        content=body.content,
        sections=None if body.sections is None else body.sections.model_dump(exclude_none=True),
        variables=[v.model_dump(exclude_none=True) for v in body.variables],
        model_config={} if config is None else config.model_dump(exclude_none=True),
        message=body.message,
    )


def version_out(version: PromptVersion) -> schemas.VersionOut:
    """A stored version."""
    return schemas.VersionOut.model_validate(_version_fields(version))


async def retire_cache_entries(
    cache: SemanticCacheService | None, db: AsyncSession, tenant_id: str, saved: SavedVersion
) -> InvalidationOutcome:
    """Retire the cache entries keyed on the sections a new version changed.

    Called before the save commits, in its transaction: the entries go if and only if the
    version is saved (a rollback brings them back, and the indexes only drop them after the
    commit). Retiring after the commit instead could leave a saved version whose old answers
    are still served when the process dies in between.
    """
    change = saved.sections_change
    if cache is None or change is None:
        return InvalidationOutcome()
    return await cache.retire_for_sections(
        db, tenant_id, change.old_hash, change.new_hash, new_sections=change.literal_sections
    )


def saved_out(
    saved: SavedVersion, retired: InvalidationOutcome | None = None
) -> schemas.VersionSaved:
    """A new version with its warnings and the cache entries it retired."""
    retired = retired or InvalidationOutcome()
    return schemas.VersionSaved.model_validate(
        {
            **_version_fields(saved.version),
            "warnings": [asdict(w) for w in saved.warnings],
            "cache_entries_retired": retired.deleted + retired.refreshed,
            "cache_entries_refreshed": retired.refreshed,
        }
    )


def _version_fields(version: PromptVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "prompt_id": version.prompt_id,
        "version": version.version,
        "content": version.content,
        "sections": version.sections,
        "variables": version.variables or [],
        "model_config": version.model_config or {},
        "message": version.message,
        "created_by": version.created_by,
        "created_at": version.created_at,
        "source": {
            "session_id": version.source_session_id,
            "edit_id": version.source_edit_id,
            "listing_id": version.source_listing_id,
        },
    }


def prompt_out(prompt: Prompt) -> schemas.PromptOut:
    """A prompt's own fields."""
    return schemas.PromptOut.model_validate(prompt)


def prompt_fields(prompt: Prompt) -> dict[str, Any]:
    """A prompt's own fields as a dict, to extend into a bigger body."""
    return prompt_out(prompt).model_dump()
