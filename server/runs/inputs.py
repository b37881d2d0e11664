"""What a run runs: a saved version, a prompt by label, a live session's text, or raw text.

Exactly one source per request. A live session is read from the hub as it is this instant —
its text and its Yjs state vector, which the run records so the exact text can be found again
in the session's history — and parsed like a published version (``--- system ---`` markers);
its variables' defaults come from the session's prompt's latest version, if it has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from server.prompts import labels as label_rules
from server.prompts.content import PromptContent
from server.prompts.document import content_from_text
from server.prompts.errors import PromptError, PromptNotFound
from server.prompts.service import content_of
from server.runs.errors import InvalidRunInput, RunForbidden, RunNotFound
from storage.models import PromptVersion
from storage.repositories import collaboration as sessions_repo
from storage.repositories import prompts as prompts_repo
from storage.repositories import runs as repo


@dataclass(frozen=True, slots=True)
class RunSource:
    """Where the prompt comes from; exactly one of the groups is set."""

    prompt_version_id: str | None = None
    prompt_id: str | None = None
    label: str | None = None
    session_id: str | None = None
    content: str | None = None
    sections: Mapping[str, str] | None = None

    def given(self) -> list[str]:
        """The names of the sources this request sets."""
        found = []
        if self.prompt_version_id is not None:
            found.append("prompt_version_id")
        if self.prompt_id is not None:
            found.append("prompt_id")
        if self.session_id is not None:
            found.append("session_id")
        if self.content is not None or self.sections is not None:
            found.append("content")
        return found


@dataclass(frozen=True, slots=True)
class ResolvedInput:
    """The unrendered prompt and where it came from."""

    content: PromptContent
    prompt_version_id: str | None = None
    #: The unrendered sections of the version (the cache retires entries keyed on them).
    version_sections: Mapping[str, str] | None = None
    session_id: str | None = None
    state_vector: bytes | None = None


class LiveDocuments(Protocol):
    """Reads a live session's current text (the hub, in the server)."""

    async def snapshot(self, session_id: str) -> tuple[str, bytes]:
        """The session's text and Yjs state vector, this instant."""
        ...


async def resolve_input(
    db: AsyncSession,
    *,
    tenant_id: str,
    user_id: str,
    source: RunSource,
    live: LiveDocuments,
) -> ResolvedInput:
    """The prompt ``source`` names, in the caller's tenant; another tenant's id is not found."""
    given = source.given()
    if len(given) != 1:
        raise InvalidRunInput(
            "give exactly one of prompt_version_id, prompt_id (+ label), session_id, "
            "content or sections" + (f" (got {', '.join(given)})" if given else ""),
            field=given[1] if len(given) > 1 else "content",
        )
    if source.label is not None and source.prompt_id is None:
        raise InvalidRunInput("label needs prompt_id", field="label")
    if source.prompt_version_id is not None:
        version = await repo.get_version_in_tenant(
            db, source.prompt_version_id, tenant_id=tenant_id
        )
        if version is None:
            raise RunNotFound(
                f"no prompt version {source.prompt_version_id!r}", field="prompt_version_id"
            )
        return _of_version(version)
    if source.prompt_id is not None:
        prompt = await prompts_repo.get_prompt(db, source.prompt_id, tenant_id=tenant_id)
        if prompt is None:
            raise RunNotFound(f"no prompt {source.prompt_id!r}", field="prompt_id")
        try:
            version = await label_rules.resolve(db, prompt, source.label)
        except PromptNotFound as error:
            raise RunNotFound(error.message, field="label") from error
        except PromptError as error:
            raise InvalidRunInput(error.message, field="label") from error
        return _of_version(version)
    if source.session_id is not None:
        return await _of_session(db, tenant_id, user_id, source.session_id, live)
    return ResolvedInput(
        PromptContent(
            content=source.content,
            sections=None if source.sections is None else dict(source.sections),
        )
    )


def _of_version(version: PromptVersion) -> ResolvedInput:
    content = content_of(version)
    return ResolvedInput(content, prompt_version_id=version.id, version_sections=content.sections)


async def _of_session(
    db: AsyncSession, tenant_id: str, user_id: str, session_id: str, live: LiveDocuments
) -> ResolvedInput:
    session = await sessions_repo.get_session(db, session_id, tenant_id=tenant_id)
    if session is None:
        raise RunNotFound(f"no session {session_id!r}", field="session_id")
    if await sessions_repo.get_member(db, session.id, user_id) is None:
        raise RunForbidden("only members of the session may run its text", field="session_id")
    base = None
    if session.prompt_id is not None:
        highest = await prompts_repo.highest_version(db, session.prompt_id)
        if highest:
            latest = await prompts_repo.get_version(db, session.prompt_id, highest)
            base = None if latest is None else content_of(latest)
    text, state_vector = await live.snapshot(session.id)
    return ResolvedInput(
        content_from_text(text, base), session_id=session.id, state_vector=state_vector
    )
