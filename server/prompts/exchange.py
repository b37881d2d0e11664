"""Export a prompt as one JSON document, and import such a document as a new prompt.

The document (``format`` ``prompt-studio/prompt``, ``format_version`` 1)::

    {"format": "prompt-studio/prompt", "format_version": 1, "exported_at": "…Z",
     "prompt": {"name": …, "description": …},
     "versions": [{"version": 1, "content": …, "sections": {…} | null, "variables": […],
                   "model_config": {…}, "message": … | null, "created_at": "…Z"}, …],
     "labels": {"latest": 3, "production": 2, "staging": 3}}

Importing keeps version numbers and labels; ids, timestamps, authorship and label history
are the importer's. Exporting the import gives the same document apart from ``exported_at``
and the versions' ``created_at``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.prompts import labels as label_rules
from server.prompts.content import PromptContent
from server.prompts.context import Actor, PromptLimits
from server.prompts.errors import InvalidPrompt
from server.prompts.service import (
    VersionInput,
    content_of,
    get_prompt,
    new_version_fields,
    prepare,
)
from storage.base import utcnow
from storage.models import Prompt
from storage.repositories import prompts as repo

FORMAT = "prompt-studio/prompt"
FORMAT_VERSION = 1


def _iso(value: datetime) -> str:
    return value.isoformat() + "Z"


async def export_prompt(db: AsyncSession, actor: Actor, prompt_id: str) -> dict[str, Any]:
    """The export document of one of the caller's tenant's prompts."""
    prompt = await get_prompt(db, actor, prompt_id)
    versions = []
    for version in await repo.all_versions(db, prompt.id):
        content = content_of(version)
        versions.append(
            {
                "version": version.version,
                "content": content.content,
                "sections": None if content.sections is None else dict(content.sections),
                "variables": [v.to_json() for v in content.variables],
                "model_config": dict(content.model_config),
                "message": version.message,
                "created_at": _iso(version.created_at),
            }
        )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": _iso(utcnow()),
        "prompt": {"name": prompt.name, "description": prompt.description},
        "versions": versions,
        "labels": await label_rules.current_labels(db, prompt),
    }


def _check_document(
    document: Mapping[str, Any], limits: PromptLimits
) -> list[tuple[int, PromptContent, str | None]]:
    """The versions of a document, checked: numbers, content, labels."""
    if document.get("format") != FORMAT:
        raise InvalidPrompt(f"format must be {FORMAT!r}", field="format")
    if document.get("format_version") != FORMAT_VERSION:
        raise InvalidPrompt(
            f"format_version {document.get('format_version')!r} is not supported "
            f"(this server reads {FORMAT_VERSION})",
            field="format_version",
        )
    raw_versions: Sequence[Mapping[str, Any]] = document.get("versions") or []
    if len(raw_versions) > limits.max_import_versions:
        raise InvalidPrompt(
            f"at most {limits.max_import_versions} versions per import", field="versions"
        )
    checked: list[tuple[int, PromptContent, str | None]] = []
    seen: set[int] = set()
    for index, raw in enumerate(raw_versions):
        number = raw.get("version")
        if not isinstance(number, int) or not 1 <= number <= repo.MAX_VERSION or number in seen:
            raise InvalidPrompt(
                f"version numbers must be distinct integers from 1 to {repo.MAX_VERSION}",
                field=f"versions.{index}.version",
            )
        seen.add(number)
        given = VersionInput(
            content=raw.get("content"),
            sections=raw.get("sections"),
            variables=raw.get("variables") or [],
            model_config=raw.get("model_config") or {},
            message=raw.get("message"),
        )
        try:
            checked.append((number, prepare(given, limits), given.message))
        except InvalidPrompt as exc:
            raise InvalidPrompt(exc.message, field=f"versions.{index}.{exc.field}") from exc
    return sorted(checked, key=lambda item: item[0])


def _check_labels(labels: Mapping[str, int], numbers: set[int], limits: PromptLimits) -> None:
    highest = max(numbers, default=None)
    for name, number in labels.items():
        label_rules.validate_label(name, field=f"labels.{name}")
        if number not in numbers:
            raise InvalidPrompt(f"label {name!r} names a missing version", field=f"labels.{name}")
    if label_rules.LATEST in labels and labels[label_rules.LATEST] != highest:
        raise InvalidPrompt("'latest' must be the highest version", field="labels.latest")
    stored = [name for name in labels if label_rules.is_stored(name)]
    if len(stored) > limits.max_labels:
        raise InvalidPrompt(f"a prompt has at most {limits.max_labels} labels", field="labels")


async def import_prompt(
    db: AsyncSession, actor: Actor, document: Mapping[str, Any], limits: PromptLimits
) -> Prompt:
    """A new prompt of the caller's, with the document's versions (same numbers) and labels."""
    versions = _check_document(document, limits)
    labels: Mapping[str, int] = document.get("labels") or {}
    _check_labels(labels, {number for number, _, _ in versions}, limits)
    meta: Mapping[str, Any] = document.get("prompt") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidPrompt("the prompt needs a name", field="prompt.name")
    prompt = await repo.create_prompt(
        db,
        tenant_id=actor.tenant_id,
        owner_id=actor.user_id,
        name=name.strip(),
        description=meta.get("description"),
    )
    ids: dict[int, str] = {}
    # No cache entry is retired: these versions belong to a prompt that did not exist, so none
    # of them replaces sections that entries were made from (see service.sections_change).
    for number, content, message in versions:
        fields = new_version_fields(content, actor=actor, message=message, source=None)
        ids[number] = (await repo.insert_version(db, prompt.id, number, fields)).id
    if versions:
        await label_rules.record_move(
            db,
            prompt.id,
            label_rules.LATEST,
            from_version=None,
            to_version=versions[-1][0],
            user_id=actor.user_id,
        )
    for name, number in sorted(labels.items()):
        if name == label_rules.LATEST:
            continue
        if name == label_rules.PRODUCTION:
            prompt.active_version_id = ids[number]
        else:
            await repo.put_label(db, prompt.id, name, ids[number], user_id=actor.user_id)
        await label_rules.record_move(
            db, prompt.id, name, from_version=None, to_version=number, user_id=actor.user_id
        )
    await db.flush()
    return prompt
