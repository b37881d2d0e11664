"""The rules of labels: which names are allowed and which labels move by themselves.

A label points at one version of a prompt. ``latest`` is always the highest version and moves
by itself on every save (it cannot be set or removed); ``production`` is the prompt's active
version (``prompts.active_version_id``), set and removed like any other label. Every other
label is a ``prompt_labels`` row. Each move of any of them is recorded (who, when, from, to).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from server.prompts.context import Actor, PromptLimits
from server.prompts.errors import InvalidPrompt, PromptConflict, PromptNotFound
from storage.models import Prompt, PromptLabelEvent, PromptVersion
from storage.repositories import prompts as repo

LATEST = "latest"
PRODUCTION = "production"
BUILT_IN = (LATEST, PRODUCTION)
#: Lower-case letters, digits, ``.``, ``_`` and ``-``; starting with a letter or digit.
LABEL_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def validate_label(name: str, *, field: str = "label") -> str:
    """``name`` if it is a valid label name, else :class:`InvalidPrompt`."""
    if LABEL_RE.fullmatch(name) is None:
        raise InvalidPrompt(
            f"label {name!r} is invalid: 1-64 of a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit",
            field=field,
        )
    return name


def validate_movable(name: str, *, field: str = "label") -> str:
    """``name`` if a caller may set or remove it (``latest`` moves only by saving)."""
    validate_label(name, field=field)
    if name == LATEST:
        raise InvalidPrompt("'latest' moves by itself on every save", field=field)
    return name


def is_stored(name: str) -> bool:
    """Whether the label is a ``prompt_labels`` row (not a built-in one)."""
    return name not in BUILT_IN


@dataclass(frozen=True, slots=True)
class LabelMove:
    """A label's move: the version numbers it pointed at before and after (None = unset)."""

    label: str
    from_version: int | None
    to_version: int | None


async def _prompt(db: AsyncSession, actor: Actor, prompt_id: str, *, lock: bool) -> Prompt:
    if lock:
        prompt = await repo.lock_prompt(db, prompt_id, tenant_id=actor.tenant_id)
    else:
        prompt = await repo.get_prompt(db, prompt_id, tenant_id=actor.tenant_id)
    if prompt is None:
        raise PromptNotFound(f"no prompt {prompt_id!r}")
    return prompt


async def current_labels(db: AsyncSession, prompt: Prompt) -> dict[str, int]:
    """Every label of a prompt that is set (built-in ones included) → its version number."""
    labels = {row.label.name: row.version for row in await repo.list_labels(db, prompt.id)}
    latest = await repo.highest_version(db, prompt.id)
    if latest:
        labels[LATEST] = latest
    if prompt.active_version_id is not None:
        numbers = await repo.version_numbers(db, [prompt.active_version_id])
        if prompt.active_version_id in numbers:
            labels[PRODUCTION] = numbers[prompt.active_version_id]
    return dict(sorted(labels.items()))


async def record_move(
    db: AsyncSession,
    prompt_id: str,
    label: str,
    *,
    from_version: int | None,
    to_version: int | None,
    user_id: str | None,
) -> LabelMove:
    """Append a move to the label history."""
    await repo.record_label_event(
        db,
        prompt_id,
        label,
        from_version=from_version,
        to_version=to_version,
        user_id=user_id,
    )
    return LabelMove(label, from_version, to_version)


async def resolve(db: AsyncSession, prompt: Prompt, label: str | None) -> PromptVersion:
    """The version a label points at; no label = ``production`` if set, else ``latest``."""
    if label is not None:
        validate_label(label)
    labels = await current_labels(db, prompt)
    if label is None:
        number = labels.get(PRODUCTION, labels.get(LATEST))
        missing = f"prompt {prompt.id!r} has no versions"
    else:
        number = labels.get(label)
        missing = f"prompt {prompt.id!r} has no label {label!r}"
    version = None if number is None else await repo.get_version(db, prompt.id, number)
    if version is None:
        raise PromptNotFound(missing, field="label")
    return version


async def set_label(
    db: AsyncSession,
    actor: Actor,
    prompt_id: str,
    name: str,
    number: int,
    limits: PromptLimits,
) -> LabelMove:
    """Point a label at a version (``production`` sets the active version)."""
    validate_movable(name)
    prompt = await _prompt(db, actor, prompt_id, lock=True)
    version = await repo.get_version(db, prompt.id, number)
    if version is None:
        raise PromptNotFound(f"prompt {prompt_id!r} has no version {number}", field="version")
    before = (await current_labels(db, prompt)).get(name)
    if before == number:
        return LabelMove(name, before, number)
    if name == PRODUCTION:
        prompt.active_version_id = version.id
        await db.flush()
    else:
        if before is None and await repo.count_labels(db, prompt.id) >= limits.max_labels:
            raise PromptConflict(f"a prompt has at most {limits.max_labels} labels")
        await repo.put_label(db, prompt.id, name, version.id, user_id=actor.user_id)
    return await record_move(
        db, prompt.id, name, from_version=before, to_version=number, user_id=actor.user_id
    )


async def delete_label(db: AsyncSession, actor: Actor, prompt_id: str, name: str) -> LabelMove:
    """Remove a label (``production``: the prompt has no active version any more)."""
    validate_movable(name)
    prompt = await _prompt(db, actor, prompt_id, lock=True)
    before = (await current_labels(db, prompt)).get(name)
    if before is None:
        raise PromptNotFound(f"prompt {prompt_id!r} has no label {name!r}", field="label")
    if name == PRODUCTION:
        prompt.active_version_id = None
        await db.flush()
    else:
        label = await repo.get_label(db, prompt.id, name)
        if label is not None:
            await repo.remove_label(db, label)
    return await record_move(
        db, prompt.id, name, from_version=before, to_version=None, user_id=actor.user_id
    )


async def label_history(
    db: AsyncSession, actor: Actor, prompt_id: str, *, limit: int, offset: int
) -> tuple[dict[str, int], list[PromptLabelEvent], int]:
    """A prompt's labels, and a page of every move (newest first) with the total."""
    prompt = await _prompt(db, actor, prompt_id, lock=False)
    events, total = await repo.list_label_events(db, prompt.id, limit=limit, offset=offset)
    return await current_labels(db, prompt), events, total
