"""Prompts and versions over REST (login token): CRUD, versions, render, labels, diff,
export/import. Each endpoint parses, calls one :mod:`server.prompts` function, shapes."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from server.api.deps import CurrentUser, ServicesDep, UserDb
from server.api.prompt_views import (
    DOMAIN_ERRORS,
    domain_errors,
    limits_of,
    prompt_fields,
    prompt_out,
    retire_cache_entries,
    saved_out,
    version_input,
    version_out,
)
from server.api.routing import StudioRoute
from server.api.schemas import prompts as schemas
from server.api.types import PageParams, ResourceId
from server.auth import Principal
from server.prompts import exchange, labels, service
from server.prompts.context import Actor

router = APIRouter(route_class=StudioRoute, tags=["prompts"])

Page = Annotated[PageParams, Depends()]
VersionPath = Annotated[int, Path(ge=1, le=schemas.MAX_VERSION, description="version number")]
LabelPath = Annotated[str, Path(min_length=1, max_length=64, description="label name")]


def _actor(user: Principal) -> Actor:
    return Actor(tenant_id=user.tenant_id, user_id=user.user_id)


@router.post(
    "/prompts",
    status_code=201,
    response_model=schemas.PromptCreated,
    summary="New prompt",
    responses=DOMAIN_ERRORS,
)
async def create_prompt(
    body: schemas.PromptCreate, user: CurrentUser, db: UserDb, services: ServicesDep
) -> schemas.PromptCreated:
    """A new prompt owned by the caller; with ``version``, it starts with version 1."""
    with domain_errors():
        prompt, saved = await service.create_prompt(
            db,
            _actor(user),
            name=body.name,
            description=body.description,
            first=None if body.version is None else version_input(body.version),
            limits=limits_of(services.settings),
        )
    await db.commit()
    return schemas.PromptCreated(
        **prompt_fields(prompt), version=None if saved is None else saved_out(saved)
    )


@router.get(
    "/prompts", response_model=schemas.PromptList, summary="List prompts", responses=DOMAIN_ERRORS
)
async def list_prompts(
    user: CurrentUser,
    db: UserDb,
    page: Page,
    q: Annotated[
        str | None,
        # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the query.
        Query(max_length=200, pattern=r"^[^\x00]*$", description="name/description contains"),
    ] = None,
) -> schemas.PromptList:
    """The tenant's prompts, most recently updated first; ``q`` searches name and description."""
    items, total = await service.list_prompts(
        db, _actor(user), q=q, limit=page.limit, offset=page.offset
    )
    return schemas.PromptList(
        items=[prompt_out(p) for p in items], total=total, limit=page.limit, offset=page.offset
    )


@router.post(
    "/prompts/import",
    status_code=201,
    response_model=schemas.PromptDetail,
    summary="Import",
    responses=DOMAIN_ERRORS,
)
async def import_prompt(
    body: schemas.ExportDocument, user: CurrentUser, db: UserDb, services: ServicesDep
) -> schemas.PromptDetail:
    """A new prompt from an export document: same version numbers and labels."""
    with domain_errors():
        prompt = await exchange.import_prompt(
            db, _actor(user), body.model_dump(by_alias=True), limits_of(services.settings)
        )
    await db.commit()
    return await _detail(db, user, prompt.id)


async def _detail(db: UserDb, user: Principal, prompt_id: str) -> schemas.PromptDetail:
    with domain_errors():
        detail = await service.prompt_detail(db, _actor(user), prompt_id)
    active = detail.active_version
    return schemas.PromptDetail(
        **prompt_fields(detail.prompt),
        labels=detail.labels,
        latest_version=detail.latest_version,
        active_version=None if active is None else version_out(active),
    )


@router.get(
    "/prompts/{prompt_id}",
    response_model=schemas.PromptDetail,
    summary="One prompt",
    responses=DOMAIN_ERRORS,
)
async def read_prompt(prompt_id: ResourceId, user: CurrentUser, db: UserDb) -> schemas.PromptDetail:
    """A prompt with its labels and its active (production) version."""
    return await _detail(db, user, prompt_id)


@router.patch(
    "/prompts/{prompt_id}",
    response_model=schemas.PromptOut,
    summary="Rename",
    responses=DOMAIN_ERRORS,
)
async def update_prompt(
    prompt_id: ResourceId, body: schemas.PromptUpdate, user: CurrentUser, db: UserDb
) -> schemas.PromptOut:
    """Change a prompt's name and/or description."""
    with domain_errors():
        prompt = await service.update_prompt(
            db, _actor(user), prompt_id, body.model_dump(include=body.model_fields_set)
        )
    await db.commit()
    return prompt_out(prompt)


@router.delete(
    "/prompts/{prompt_id}", status_code=204, summary="Delete (owner only)", responses=DOMAIN_ERRORS
)
async def delete_prompt(prompt_id: ResourceId, user: CurrentUser, db: UserDb) -> None:
    """Delete a prompt and its versions; runs of them keep a null version."""
    with domain_errors():
        await service.delete_prompt(db, _actor(user), prompt_id)
    await db.commit()


@router.post(
    "/prompts/{prompt_id}/versions",
    status_code=201,
    response_model=schemas.VersionSaved,
    summary="Save a version",
    responses=DOMAIN_ERRORS,
)
async def save_version(
    prompt_id: ResourceId,
    body: schemas.VersionCreate,
    user: CurrentUser,
    db: UserDb,
    services: ServicesDep,
) -> schemas.VersionSaved:
    """The next version (numbered after the highest); ``latest`` moves to it."""
    with domain_errors():
        saved = await service.save_version(
            db, _actor(user), prompt_id, version_input(body), limits_of(services.settings)
        )
    retired = await retire_cache_entries(services.cache, db, user.tenant_id, saved)
    await db.commit()
    return saved_out(saved, retired)


@router.get(
    "/prompts/{prompt_id}/versions",
    response_model=schemas.VersionList,
    summary="Versions",
    responses=DOMAIN_ERRORS,
)
async def list_versions(
    prompt_id: ResourceId, user: CurrentUser, db: UserDb, page: Page
) -> schemas.VersionList:
    """A prompt's versions, newest first, paged."""
    with domain_errors():
        items, total = await service.list_versions(
            db, _actor(user), prompt_id, limit=page.limit, offset=page.offset
        )
    return schemas.VersionList(
        items=[version_out(v) for v in items], total=total, limit=page.limit, offset=page.offset
    )


@router.get(
    "/prompts/{prompt_id}/versions/{number}",
    response_model=schemas.VersionOut,
    summary="One version",
    responses=DOMAIN_ERRORS,
)
async def read_version(
    prompt_id: ResourceId, number: VersionPath, user: CurrentUser, db: UserDb
) -> schemas.VersionOut:
    """One version by number."""
    with domain_errors():
        return version_out(await service.get_version(db, _actor(user), prompt_id, number))


@router.post(
    "/prompts/{prompt_id}/render",
    response_model=schemas.Rendered,
    summary="Render",
    responses=DOMAIN_ERRORS,
)
async def render(
    prompt_id: ResourceId, body: schemas.RenderRequest, user: CurrentUser, db: UserDb
) -> schemas.Rendered:
    """A version rendered with the given variables, and the chat messages it makes."""
    with domain_errors():
        version, rendered = await service.render_version(
            db,
            _actor(user),
            prompt_id,
            number=body.version,
            label=body.label,
            values=body.variables,
        )
    return schemas.Rendered(
        prompt_id=prompt_id,
        version=version.version,
        content=rendered.content,
        sections=rendered.sections,
        messages=[schemas.Message(role=m.role, content=m.content) for m in rendered.messages],
    )


@router.get(
    "/prompts/{prompt_id}/labels",
    response_model=schemas.Labels,
    summary="Labels",
    responses=DOMAIN_ERRORS,
)
async def list_labels(
    prompt_id: ResourceId, user: CurrentUser, db: UserDb, page: Page
) -> schemas.Labels:
    """A prompt's labels, and a page of every move (who, when, from, to), newest first."""
    with domain_errors():
        current, events, total = await labels.label_history(
            db, _actor(user), prompt_id, limit=page.limit, offset=page.offset
        )
    return schemas.Labels(
        labels=current,
        items=[
            schemas.LabelEvent(
                label=e.label,
                from_version=e.from_version,
                to_version=e.to_version,
                user_id=e.user_id,
                created_at=e.created_at,
            )
            for e in events
        ],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.put(
    "/prompts/{prompt_id}/labels/{label}",
    response_model=schemas.LabelMove,
    summary="Set label",
    responses=DOMAIN_ERRORS,
)
async def set_label(
    prompt_id: ResourceId,
    label: LabelPath,
    body: schemas.LabelSet,
    user: CurrentUser,
    db: UserDb,
    services: ServicesDep,
) -> schemas.LabelMove:
    """Point a label at a version (``production`` = the active version; ``latest`` is automatic)."""
    with domain_errors():
        moved = await labels.set_label(
            db, _actor(user), prompt_id, label, body.version, limits_of(services.settings)
        )
    await db.commit()
    return schemas.LabelMove(**asdict(moved))


@router.delete(
    "/prompts/{prompt_id}/labels/{label}",
    response_model=schemas.LabelMove,
    summary="Remove label",
    responses=DOMAIN_ERRORS,
)
async def delete_label(
    prompt_id: ResourceId, label: LabelPath, user: CurrentUser, db: UserDb
) -> schemas.LabelMove:
    """Remove a label (``production``: no active version any more)."""
    with domain_errors():
        moved = await labels.delete_label(db, _actor(user), prompt_id, label)
    await db.commit()
    return schemas.LabelMove(**asdict(moved))


@router.get(
    "/prompts/{prompt_id}/resolve",
    response_model=schemas.VersionOut,
    summary="Resolve label",
    responses=DOMAIN_ERRORS,
)
async def resolve(
    prompt_id: ResourceId,
    user: CurrentUser,
    db: UserDb,
    label: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> schemas.VersionOut:
    """The version a label points at; no label = ``production`` if set, else ``latest``."""
    with domain_errors():
        version = await service.pick_version(db, _actor(user), prompt_id, number=None, label=label)
    return version_out(version)


@router.get(
    "/prompts/{prompt_id}/diff",
    response_model=schemas.VersionDiff,
    summary="Diff",
    responses=DOMAIN_ERRORS,
)
async def diff(
    prompt_id: ResourceId,
    user: CurrentUser,
    db: UserDb,
    from_version: Annotated[int, Query(alias="from", ge=1, le=schemas.MAX_VERSION)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=schemas.MAX_VERSION)],
) -> schemas.VersionDiff:
    """A unified diff per section and for ``content``, plus variable and model-config changes."""
    with domain_errors():
        result = await service.diff(
            db, _actor(user), prompt_id, from_version=from_version, to_version=to_version
        )
    return schemas.VersionDiff.model_validate(
        {
            "from_version": result.from_version,
            "to_version": result.to_version,
            "texts": [asdict(t) for t in result.texts],
            "variables": [asdict(v) for v in result.variables],
            "model_config": [asdict(c) for c in result.model_config],
        }
    )


@router.get(
    "/prompts/{prompt_id}/export",
    response_model=schemas.ExportDocument,
    summary="Export",
    responses=DOMAIN_ERRORS,
)
async def export(prompt_id: ResourceId, user: CurrentUser, db: UserDb) -> schemas.ExportDocument:
    """One JSON document with every version and label (``POST /api/prompts/import`` reads it)."""
    with domain_errors():
        document = await exchange.export_prompt(db, _actor(user), prompt_id)
    return schemas.ExportDocument.model_validate(document)
