"""Prompts and versions: the operations the prompts API calls, one per endpoint.

Each takes the caller (:class:`Actor`) and an ``AsyncSession`` scoped to the caller's tenant;
the caller's router commits. Another tenant's prompt is :class:`PromptNotFound`, exactly like
an unknown id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.cache.scope import keyed_sections, sections_hash
from server.prompts import labels as label_rules
from server.prompts.content import PromptContent, sections_from_json, variables_from_json
from server.prompts.context import Actor, PromptLimits
from server.prompts.diff import VersionDiff, diff_versions
from server.prompts.errors import InvalidPrompt, NotPromptOwner, PromptConflict, PromptNotFound
from server.prompts.render import RenderedPrompt, render
from server.prompts.variables import PLACEHOLDER_RE, VariableWarning, declare, warnings_for
from storage.models import Prompt, PromptVersion
from storage.repositories import prompts as repo


@dataclass(frozen=True, slots=True)
class VersionInput:
    """A version as a client sends it; :func:`prepare` checks it."""

    content: str | None = None
    sections: Mapping[str, str] | None = None
    variables: Sequence[Mapping[str, object]] = ()
    model_config: Mapping[str, Any] = field(default_factory=dict)
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """Where a version comes from, when not typed in: a live session or a marketplace listing."""

    session_id: str | None = None
    edit_id: int | None = None
    listing_id: str | None = None


@dataclass(frozen=True, slots=True)
class SectionsChange:
    """A new version's keyed sections (system, developer, context) differ from the previous's.

    The cache retires the entries keyed on ``old_hash`` (see
    :meth:`server.cache.SemanticCacheService.retire_for_sections`).
    """

    old_hash: str
    new_hash: str
    #: The new keyed sections when they hold no placeholder (a refresh can send them as they
    #: are); None when only a run with variables could render them.
    literal_sections: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class SavedVersion:
    """A new version, the warnings its variables gave, and what it changed for the cache."""

    version: PromptVersion
    warnings: list[VariableWarning]
    sections_change: SectionsChange | None = None


def sections_change(
    previous: PromptContent | None, current: PromptContent
) -> SectionsChange | None:
    """What the cache must retire when ``current`` follows ``previous`` (None: nothing)."""
    if previous is None:
        return None
    old_hash, new_hash = sections_hash(previous.sections), sections_hash(current.sections)
    if old_hash == new_hash:
        return None
    keyed = keyed_sections(current.sections)
    literal = None if any(PLACEHOLDER_RE.search(text) for text in keyed.values()) else keyed
    return SectionsChange(old_hash, new_hash, literal)


@dataclass(frozen=True, slots=True)
class PromptDetail:
    """A prompt with its labels (name → version number) and its active version."""

    prompt: Prompt
    labels: dict[str, int]
    active_version: PromptVersion | None
    latest_version: int | None


def content_of(version: PromptVersion) -> PromptContent:
    """A stored version's content as plain data."""
    return PromptContent(
        content=version.content,
        sections=sections_from_json(version.sections),
        variables=variables_from_json(version.variables),
        model_config=dict(version.model_config or {}),
    )


def prepare(given: VersionInput, limits: PromptLimits) -> PromptContent:
    """Check a client's version: declared names, sizes; the content to store."""
    if given.content is None and given.sections is None:
        raise InvalidPrompt("a version needs content and/or sections", field="content")
    if len(given.variables) > limits.max_variables:
        raise InvalidPrompt(
            f"at most {limits.max_variables} variables per version", field="variables"
        )
    content = PromptContent(
        content=given.content,
        sections=None if given.sections is None else dict(given.sections),
        variables=declare(given.variables),
        model_config=dict(given.model_config),
    )
    if content.size() > limits.max_text_chars:
        raise InvalidPrompt(
            f"a version holds at most {limits.max_text_chars} characters of text",
            field="content",
        )
    return content


def new_version_fields(
    content: PromptContent, *, actor: Actor, message: str | None, source: Source | None
) -> repo.NewVersion:
    """The row fields of a version with this content."""
    source = source or Source()
    return repo.NewVersion(
        content=content.content,
        sections=None if content.sections is None else dict(content.sections),
        variables=[v.to_json() for v in content.variables],
        model_config=dict(content.model_config),
        message=message,
        created_by=actor.user_id,
        source_session_id=source.session_id,
        source_edit_id=source.edit_id,
        source_listing_id=source.listing_id,
    )


# -- prompts ---------------------------------------------------------------------------------


async def get_prompt(db: AsyncSession, actor: Actor, prompt_id: str) -> Prompt:
    """The caller's tenant's prompt, or :class:`PromptNotFound`."""
    prompt = await repo.get_prompt(db, prompt_id, tenant_id=actor.tenant_id)
    if prompt is None:
        raise PromptNotFound(f"no prompt {prompt_id!r}")
    return prompt


async def create_prompt(
    db: AsyncSession,
    actor: Actor,
    *,
    name: str,
    description: str | None,
    first: VersionInput | None,
    limits: PromptLimits,
    source: Source | None = None,
) -> tuple[Prompt, SavedVersion | None]:
    """A new prompt owned by the caller, with version 1 when ``first`` is given."""
    content = None if first is None else prepare(first, limits)
    prompt = await repo.create_prompt(
        db, tenant_id=actor.tenant_id, owner_id=actor.user_id, name=name, description=description
    )
    if first is None or content is None:
        return prompt, None
    saved = await _add_version(db, actor, prompt, content, first.message, source, limits)
    return prompt, saved


async def prompt_detail(db: AsyncSession, actor: Actor, prompt_id: str) -> PromptDetail:
    """A prompt with its labels and active version."""
    prompt = await get_prompt(db, actor, prompt_id)
    labels = await label_rules.current_labels(db, prompt)
    active = (
        None
        if prompt.active_version_id is None
        else await repo.get_version_by_id(db, prompt.id, prompt.active_version_id)
    )
    return PromptDetail(prompt, labels, active, labels.get(label_rules.LATEST))


async def list_prompts(
    db: AsyncSession, actor: Actor, *, q: str | None, limit: int, offset: int
) -> tuple[list[Prompt], int]:
    """The caller's tenant's prompts, newest activity first."""
    return await repo.list_prompts(db, tenant_id=actor.tenant_id, q=q, limit=limit, offset=offset)


async def update_prompt(
    db: AsyncSession, actor: Actor, prompt_id: str, changes: Mapping[str, str | None]
) -> Prompt:
    """Rename or re-describe a prompt (``changes`` holds ``name`` and/or ``description``)."""
    prompt = await get_prompt(db, actor, prompt_id)
    if "name" in changes:
        if not changes["name"]:
            raise InvalidPrompt("name cannot be empty", field="name")
        prompt.name = str(changes["name"])
    if "description" in changes:
        prompt.description = changes["description"]
    await db.flush()
    return prompt


async def delete_prompt(db: AsyncSession, actor: Actor, prompt_id: str) -> None:
    """Delete a prompt and its versions (owner only); runs keep a NULL version."""
    prompt = await get_prompt(db, actor, prompt_id)
    if prompt.owner_id != actor.user_id:
        raise NotPromptOwner("only the prompt's owner may delete it")
    await repo.delete_prompt(db, prompt.id)


# -- versions --------------------------------------------------------------------------------


async def save_version(
    db: AsyncSession,
    actor: Actor,
    prompt_id: str,
    given: VersionInput,
    limits: PromptLimits,
    *,
    source: Source | None = None,
) -> SavedVersion:
    """A new version numbered after the highest so far; ``latest`` moves to it."""
    content = prepare(given, limits)
    return await save_content(db, actor, prompt_id, content, given.message, limits, source=source)


async def save_content(
    db: AsyncSession,
    actor: Actor,
    prompt_id: str,
    content: PromptContent,
    message: str | None,
    limits: PromptLimits,
    *,
    source: Source | None = None,
) -> SavedVersion:
    """Like :func:`save_version`, for content already checked (publishing a session)."""
    prompt = await repo.lock_prompt(db, prompt_id, tenant_id=actor.tenant_id)
    if prompt is None:
        raise PromptNotFound(f"no prompt {prompt_id!r}")
    return await _add_version(db, actor, prompt, content, message, source, limits)


async def _add_version(
    db: AsyncSession,
    actor: Actor,
    prompt: Prompt,
    content: PromptContent,
    message: str | None,
    source: Source | None,
    limits: PromptLimits,
) -> SavedVersion:
    fields = new_version_fields(content, actor=actor, message=message, source=source)
    # The highest version so far (numbers may have gaps after an import); the caller holds the
    # prompt's row lock, so it is still the highest when the new one is added.
    highest = await repo.highest_version(db, prompt.id)
    previous = None if highest == 0 else await repo.get_version(db, prompt.id, highest)
    change = sections_change(None if previous is None else content_of(previous), content)
    try:
        version = await repo.add_version(db, prompt.id, fields, attempts=limits.save_attempts)
    except repo.VersionNumberTakenError as exc:
        raise PromptConflict(str(exc)) from exc
    await label_rules.record_move(
        db,
        prompt.id,
        label_rules.LATEST,
        from_version=version.version - 1 or None,
        to_version=version.version,
        user_id=actor.user_id,
    )
    return SavedVersion(version, warnings_for(content), change)


async def get_version(db: AsyncSession, actor: Actor, prompt_id: str, number: int) -> PromptVersion:
    """One version by number, or :class:`PromptNotFound`."""
    prompt = await get_prompt(db, actor, prompt_id)
    version = await repo.get_version(db, prompt.id, number)
    if version is None:
        raise PromptNotFound(f"prompt {prompt_id!r} has no version {number}")
    return version


async def list_versions(
    db: AsyncSession, actor: Actor, prompt_id: str, *, limit: int, offset: int
) -> tuple[list[PromptVersion], int]:
    """A prompt's versions, newest first."""
    prompt = await get_prompt(db, actor, prompt_id)
    return await repo.list_versions(db, prompt.id, limit=limit, offset=offset)


async def pick_version(
    db: AsyncSession, actor: Actor, prompt_id: str, *, number: int | None, label: str | None
) -> PromptVersion:
    """The version a request names by number or by label (default: production, else latest)."""
    if number is not None and label is not None:
        raise InvalidPrompt("give a version or a label, not both", field="label")
    if number is not None:
        return await get_version(db, actor, prompt_id, number)
    prompt = await get_prompt(db, actor, prompt_id)
    return await label_rules.resolve(db, prompt, label)


async def render_version(
    db: AsyncSession,
    actor: Actor,
    prompt_id: str,
    *,
    number: int | None,
    label: str | None,
    values: Mapping[str, str],
) -> tuple[PromptVersion, RenderedPrompt]:
    """Render a version with the given variable values."""
    version = await pick_version(db, actor, prompt_id, number=number, label=label)
    return version, render(content_of(version), values)


async def diff(
    db: AsyncSession, actor: Actor, prompt_id: str, *, from_version: int, to_version: int
) -> VersionDiff:
    """What changed from one version to another."""
    old = await get_version(db, actor, prompt_id, from_version)
    new = await get_version(db, actor, prompt_id, to_version)
    return diff_versions(
        content_of(old), content_of(new), from_version=from_version, to_version=to_version
    )
