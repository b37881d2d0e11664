"""Live sessions and prompts: the text a session starts from, and publishing its text.

Publishing makes a session's live text a new version of its prompt (or of the one named),
parsed back into content and sections (:mod:`server.prompts.document`); the variables and
model config carry over from the prompt's latest version, since the live text holds neither.
The version records the session and the ``edit_history`` id the text was taken at.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from server.prompts import labels as label_rules
from server.prompts.context import Actor, PromptLimits
from server.prompts.document import content_from_text, version_text
from server.prompts.errors import InvalidPrompt, PromptNotFound
from server.prompts.service import SavedVersion, Source, content_of, get_version, save_content
from storage.models import CollaborationSession
from storage.repositories import prompts as repo


@dataclass(frozen=True, slots=True)
class LiveText:
    """A session's text and the newest edit_history id it includes (None: no edits yet)."""

    text: str
    edit_id: int | None


async def initial_text_for_version(
    db: AsyncSession, actor: Actor, prompt_id: str, number: int | None
) -> str:
    """The live text a new session on this prompt starts from.

    ``number`` names a version; without it, the one ``resolve`` gives (production, else
    latest); a prompt without versions starts empty. Another tenant's prompt is not found.
    """
    if number is not None:
        try:
            version = await get_version(db, actor, prompt_id, number)
        except PromptNotFound as exc:
            raise PromptNotFound(exc.message, field="version") from exc
        return version_text(content_of(version))
    prompt = await repo.get_prompt(db, prompt_id, tenant_id=actor.tenant_id)
    if prompt is None:
        raise PromptNotFound(f"no prompt {prompt_id!r}", field="prompt_id")
    if await repo.highest_version(db, prompt.id) == 0:
        return ""
    return version_text(content_of(await label_rules.resolve(db, prompt, None)))


async def publish(
    db: AsyncSession,
    actor: Actor,
    session: CollaborationSession,
    live: LiveText,
    *,
    prompt_id: str | None,
    message: str | None,
    limits: PromptLimits,
) -> SavedVersion:
    """Save a session's live text as the next version of its (or the named) prompt.

    A session that had no prompt remembers this one from now on.
    """
    target = prompt_id or session.prompt_id
    if target is None:
        raise InvalidPrompt(
            "this session has no prompt: name one with prompt_id", field="prompt_id"
        )
    prompt = await repo.get_prompt(db, target, tenant_id=actor.tenant_id)
    if prompt is None:
        raise PromptNotFound(f"no prompt {target!r}", field="prompt_id")
    highest = await repo.highest_version(db, prompt.id)
    latest = None if highest == 0 else await repo.get_version(db, prompt.id, highest)
    content = content_from_text(live.text, None if latest is None else content_of(latest))
    if content.size() > limits.max_text_chars:
        raise InvalidPrompt(
            f"a version holds at most {limits.max_text_chars} characters of text", field="content"
        )
    saved = await save_content(
        db,
        actor,
        prompt.id,
        content,
        message,
        limits,
        source=Source(session_id=session.id, edit_id=live.edit_id),
    )
    if session.prompt_id is None:
        await repo.set_session_prompt(db, session.id, prompt.id)
        session.prompt_id = prompt.id
    return saved
