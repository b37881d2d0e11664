"""Prompts, their versions and labels: the tenant-scoped queries behind the prompts API.

Every lookup a client can trigger takes the tenant; another tenant's id behaves exactly like
an unknown one.

Version numbers are allocated under the prompt's row lock: :func:`add_version` first updates
the prompt row (``updated_at``), which on PostgreSQL locks it until commit and on SQLite takes
the database's write lock, so concurrent saves of one prompt queue up and each reads the
highest number committed before it. Should a number still be taken (a writer that did not
lock), the insert is retried in a savepoint with the next number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.base import utcnow
from storage.models import (
    CollaborationSession,
    EditHistory,
    Prompt,
    PromptLabel,
    PromptLabelEvent,
    PromptVersion,
)

#: The highest version number (``prompt_versions.version`` is a 32-bit INTEGER on PostgreSQL).
MAX_VERSION = 2**31 - 1


class VersionNumberTakenError(RuntimeError):
    """Every attempt to allocate a version number collided with another writer."""


@dataclass(frozen=True, slots=True)
class NewVersion:
    """The fields of a version to insert (the number is allocated by the repository)."""

    content: str | None = None
    sections: dict[str, Any] | None = None
    variables: list[dict[str, Any]] = field(default_factory=list)
    model_config: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    created_by: str | None = None
    source_session_id: str | None = None
    source_edit_id: int | None = None
    source_listing_id: str | None = None


@dataclass(frozen=True, slots=True)
class LabelRow:
    """A stored label with the number of the version it points at."""

    label: PromptLabel
    version: int


# -- prompts -------------------------------------------------------------------------------------


async def create_prompt(
    db: AsyncSession, *, tenant_id: str, owner_id: str, name: str, description: str | None
) -> Prompt:
    """Insert a prompt (no versions yet)."""
    prompt = Prompt(tenant_id=tenant_id, owner_id=owner_id, name=name, description=description)
    db.add(prompt)
    await db.flush()
    return prompt


async def get_prompt(db: AsyncSession, prompt_id: str, *, tenant_id: str) -> Prompt | None:
    """The tenant's prompt with this id, or None."""
    return await db.scalar(
        select(Prompt).where(Prompt.id == prompt_id, Prompt.tenant_id == tenant_id)
    )


async def lock_prompt(db: AsyncSession, prompt_id: str, *, tenant_id: str) -> Prompt | None:
    """Touch the tenant's prompt row, holding its lock until commit; None if there is none.

    Call it as the transaction's first write: on SQLite it is what takes the write lock.
    """
    touched = await db.execute(
        update(Prompt)
        .where(Prompt.id == prompt_id, Prompt.tenant_id == tenant_id)
        .values(updated_at=utcnow())
        .returning(Prompt.id)
        .execution_options(synchronize_session=False)
    )
    if touched.scalar() is None:
        return None
    prompt = await get_prompt(db, prompt_id, tenant_id=tenant_id)
    if prompt is not None:
        await db.refresh(prompt)
    return prompt


async def list_prompts(
    db: AsyncSession, *, tenant_id: str, q: str | None, limit: int, offset: int
) -> tuple[list[Prompt], int]:
    """The tenant's prompts, most recently updated first, optionally matching ``q``.

    ``q`` matches name or description case-insensitively, as a plain substring.
    """
    scope = [Prompt.tenant_id == tenant_id]
    if q:
        needle = q.lower()
        scope.append(
            or_(
                func.lower(Prompt.name).contains(needle, autoescape=True),
                func.lower(func.coalesce(Prompt.description, "")).contains(needle, autoescape=True),
            )
        )
    rows = await db.scalars(
        select(Prompt)
        .where(*scope)
        .order_by(Prompt.updated_at.desc(), Prompt.id)
        .limit(limit)
        .offset(offset)
    )
    total = await db.scalar(select(func.count(Prompt.id)).where(*scope))
    return list(rows), int(total or 0)


async def delete_prompt(db: AsyncSession, prompt_id: str) -> None:
    """Delete a prompt; its versions, labels and label history go with it (foreign keys)."""
    await db.execute(
        delete(Prompt).where(Prompt.id == prompt_id).execution_options(synchronize_session=False)
    )


# -- versions ------------------------------------------------------------------------------------


async def highest_version(db: AsyncSession, prompt_id: str) -> int:
    """The highest version number of a prompt (0 when it has none)."""
    highest = await db.scalar(
        select(func.max(PromptVersion.version)).where(PromptVersion.prompt_id == prompt_id)
    )
    return int(highest or 0)


async def add_version(
    db: AsyncSession, prompt_id: str, fields: NewVersion, *, attempts: int
) -> PromptVersion:
    """Insert the next version of a prompt whose row the caller locked (:func:`lock_prompt`).

    Raises :class:`VersionNumberTakenError` if ``attempts`` numbers in a row were taken.
    """
    for _ in range(attempts):
        number = await highest_version(db, prompt_id) + 1
        if number > MAX_VERSION:
            raise VersionNumberTakenError(f"{prompt_id} has used every version number")
        version = _version_row(prompt_id, number, fields)
        try:
            async with db.begin_nested():
                db.add(version)
        except IntegrityError:
            if await get_version(db, prompt_id, number) is None:
                raise  # not a number collision
            continue
        return version
    raise VersionNumberTakenError(f"no free version number for {prompt_id} in {attempts} tries")


async def insert_version(
    db: AsyncSession, prompt_id: str, number: int, fields: NewVersion
) -> PromptVersion:
    """Insert a version with a given number (importing into a new prompt)."""
    version = _version_row(prompt_id, number, fields)
    db.add(version)
    await db.flush()
    return version


def _version_row(prompt_id: str, number: int, fields: NewVersion) -> PromptVersion:
    return PromptVersion(
        prompt_id=prompt_id,
        version=number,
        content=fields.content,
        sections=fields.sections,
        variables=fields.variables,
        model_config=fields.model_config,
        message=fields.message,
        created_by=fields.created_by,
        source_session_id=fields.source_session_id,
        source_edit_id=fields.source_edit_id,
        source_listing_id=fields.source_listing_id,
    )


async def get_version(db: AsyncSession, prompt_id: str, number: int) -> PromptVersion | None:
    """A prompt's version by number (None for a number no version can have)."""
    if not 1 <= number <= MAX_VERSION:
        return None
    return await db.scalar(
        select(PromptVersion).where(
            PromptVersion.prompt_id == prompt_id, PromptVersion.version == number
        )
    )


async def get_version_by_id(
    db: AsyncSession, prompt_id: str, version_id: str
) -> PromptVersion | None:
    """A prompt's version by id (None if it belongs to another prompt)."""
    return await db.scalar(
        select(PromptVersion).where(
            PromptVersion.prompt_id == prompt_id, PromptVersion.id == version_id
        )
    )


async def list_versions(
    db: AsyncSession, prompt_id: str, *, limit: int, offset: int
) -> tuple[list[PromptVersion], int]:
    """A prompt's versions, newest first, and how many there are."""
    rows = await db.scalars(
        select(PromptVersion)
        .where(PromptVersion.prompt_id == prompt_id)
        .order_by(PromptVersion.version.desc())
        .limit(limit)
        .offset(offset)
    )
    total = await db.scalar(
        select(func.count(PromptVersion.id)).where(PromptVersion.prompt_id == prompt_id)
    )
    return list(rows), int(total or 0)


async def all_versions(db: AsyncSession, prompt_id: str) -> list[PromptVersion]:
    """Every version of a prompt, oldest first (for export)."""
    rows = await db.scalars(
        select(PromptVersion)
        .where(PromptVersion.prompt_id == prompt_id)
        .order_by(PromptVersion.version)
    )
    return list(rows)


async def version_numbers(db: AsyncSession, version_ids: Sequence[str]) -> dict[str, int]:
    """The numbers of the given version ids."""
    if not version_ids:
        return {}
    rows = await db.execute(
        select(PromptVersion.id, PromptVersion.version).where(
            PromptVersion.id.in_(list(version_ids))
        )
    )
    return {ident: number for ident, number in rows.all()}


# -- labels --------------------------------------------------------------------------------------


async def list_labels(db: AsyncSession, prompt_id: str) -> list[LabelRow]:
    """A prompt's stored labels with their version numbers, by name."""
    rows = await db.execute(
        select(PromptLabel, PromptVersion.version)
        .join(PromptVersion, PromptVersion.id == PromptLabel.version_id)
        .where(PromptLabel.prompt_id == prompt_id)
        .order_by(PromptLabel.name)
    )
    return [LabelRow(label, number) for label, number in rows.all()]


async def get_label(db: AsyncSession, prompt_id: str, name: str) -> PromptLabel | None:
    """A stored label of a prompt."""
    return await db.get(PromptLabel, (prompt_id, name))


async def count_labels(db: AsyncSession, prompt_id: str) -> int:
    """How many stored labels a prompt has."""
    total = await db.scalar(
        select(func.count(PromptLabel.name)).where(PromptLabel.prompt_id == prompt_id)
    )
    return int(total or 0)


async def put_label(
    db: AsyncSession, prompt_id: str, name: str, version_id: str, *, user_id: str | None
) -> PromptLabel:
    """Point a stored label at a version, creating it if needed."""
    label = await get_label(db, prompt_id, name)
    if label is None:
        label = PromptLabel(prompt_id=prompt_id, name=name, version_id=version_id)
        db.add(label)
    label.version_id = version_id
    label.updated_by = user_id
    label.updated_at = utcnow()
    await db.flush()
    return label


async def remove_label(db: AsyncSession, label: PromptLabel) -> None:
    """Delete a stored label."""
    await db.delete(label)
    await db.flush()


async def record_label_event(
    db: AsyncSession,
    prompt_id: str,
    label: str,
    *,
    from_version: int | None,
    to_version: int | None,
    user_id: str | None,
) -> PromptLabelEvent:
    """Append one label move to the prompt's label history."""
    event = PromptLabelEvent(
        prompt_id=prompt_id,
        label=label,
        from_version=from_version,
        to_version=to_version,
        user_id=user_id,
    )
    db.add(event)
    await db.flush()
    return event


async def list_label_events(
    db: AsyncSession, prompt_id: str, *, limit: int, offset: int
) -> tuple[list[PromptLabelEvent], int]:
    """A prompt's label moves, newest first, and how many there are."""
    rows = await db.scalars(
        select(PromptLabelEvent)
        .where(PromptLabelEvent.prompt_id == prompt_id)
        .order_by(PromptLabelEvent.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = await db.scalar(
        select(func.count(PromptLabelEvent.id)).where(PromptLabelEvent.prompt_id == prompt_id)
    )
    return list(rows), int(total or 0)


# -- live sessions -------------------------------------------------------------------------------


async def last_edit_id(db: AsyncSession, session_id: str) -> int | None:
    """The id of a session's newest edit_history row (None before its first edit)."""
    newest = await db.scalar(
        select(func.max(EditHistory.id)).where(EditHistory.session_id == session_id)
    )
    return None if newest is None else int(newest)


async def set_session_prompt(db: AsyncSession, session_id: str, prompt_id: str | None) -> None:
    """Remember which prompt a session edits."""
    await db.execute(
        update(CollaborationSession)
        .where(CollaborationSession.id == session_id)
        .values(prompt_id=prompt_id)
        .execution_options(synchronize_session=False)
    )
