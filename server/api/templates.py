"""Templates and techniques: search, read, a tenant's own templates, and using one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.deps import CurrentUser, ServicesDep, UserDb
from server.api.prompt_views import domain_errors, limits_of, prompt_fields, saved_out
from server.api.routing import StudioRoute
from server.api.schemas.catalog import (
    CategoryCount,
    CategoryList,
    TechniqueList,
    TechniqueOut,
    TemplateCreate,
    TemplateList,
    TemplateOut,
    TemplateUpdate,
    TemplateUse,
    TemplateVariable,
)
from server.api.schemas.prompts import PromptCreated
from server.api.types import FilterQuery, IntId, PageParams, SearchQuery, error_responses, page_of
from server.auth import Principal
from server.errors import Forbidden, NotFound
from server.prompts import service as prompts
from server.prompts.context import Actor
from server.templates import template_variables, template_version
from storage.models import Template
from storage.repositories import catalog

router = APIRouter(
    route_class=StudioRoute,
    tags=["templates and techniques"],
    responses=error_responses(403, 404, 409),
)


def template_out(template: Template) -> TemplateOut:
    """A template as the API shows it."""
    return TemplateOut(
        id=template.id,
        name=template.name,
        description=template.description,
        category=template.category,
        tags=list(template.tags or []),
        sections={k: str(v) for k, v in (template.sections or {}).items()},
        default_variables=[
            TemplateVariable(**v) for v in template_variables(template.default_variables)
        ],
        tenant_id=template.tenant_id,
        read_only=template.tenant_id is None,
        created_at=template.created_at,
    )


async def _visible(db: AsyncSession, template_id: int, user: Principal) -> Template:
    template = await catalog.get_template(db, template_id, tenant_id=user.tenant_id)
    if template is None:
        raise NotFound(f"no template {template_id}")
    return template


async def _own(db: AsyncSession, template_id: int, user: Principal) -> Template:
    template = await _visible(db, template_id, user)
    if template.tenant_id is None:
        raise Forbidden("the built-in templates are read-only; use one to make a prompt")
    return template


@router.get("/templates", response_model=TemplateList, summary="Search templates")
async def search(
    user: CurrentUser,
    db: UserDb,
    page: Annotated[PageParams, Depends()],
    q: SearchQuery = None,
    category: FilterQuery = None,
    tag: FilterQuery = None,
) -> TemplateList:
    """Global and the tenant's templates, newest first; ``q`` matches name or description
    (case-insensitive), ``category`` and ``tag`` filter."""
    items, total = await catalog.search_templates(
        db,
        tenant_id=user.tenant_id,
        q=q,
        category=category,
        tag=tag,
        limit=page.limit,
        offset=page.offset,
    )
    return page_of(TemplateList, map(template_out, items), total, page)


@router.get("/templates/categories", response_model=CategoryList, summary="Categories")
async def categories(user: CurrentUser, db: UserDb) -> CategoryList:
    """Every category with how many templates (global and the tenant's) it holds."""
    rows = await catalog.template_categories(db, tenant_id=user.tenant_id)
    return CategoryList(items=[CategoryCount(category=c, count=n) for c, n in rows])


@router.get("/templates/{template_id}", response_model=TemplateOut, summary="One template")
async def read(template_id: IntId, user: CurrentUser, db: UserDb) -> TemplateOut:
    """A global template or one of the tenant's."""
    return template_out(await _visible(db, template_id, user))


@router.post("/templates", status_code=201, response_model=TemplateOut, summary="New template")
async def create(body: TemplateCreate, user: CurrentUser, db: UserDb) -> TemplateOut:
    """A template of the caller's tenant (visible to that tenant only)."""
    template = Template(
        tenant_id=user.tenant_id,
        name=body.name,
        description=body.description,
        category=body.category,
        tags=list(dict.fromkeys(body.tags)),
        sections=body.sections.model_dump(),
        default_variables=template_variables([v.model_dump() for v in body.default_variables]),
    )
    db.add(template)
    await db.flush()
    out = template_out(template)
    await db.commit()
    return out


@router.patch("/templates/{template_id}", response_model=TemplateOut, summary="Change")
async def update(
    template_id: IntId, body: TemplateUpdate, user: CurrentUser, db: UserDb
) -> TemplateOut:
    """Change one of the tenant's templates (the built-in ones are read-only: 403)."""
    template = await _own(db, template_id, user)
    changes = body.model_dump(exclude_unset=True)
    for name in ("name", "description", "category"):
        if name in changes:
            setattr(template, name, changes[name])
    if body.tags is not None:
        template.tags = list(dict.fromkeys(body.tags))
    if body.sections is not None:
        template.sections = body.sections.model_dump()
    if body.default_variables is not None:
        template.default_variables = template_variables(
            [v.model_dump() for v in body.default_variables]
        )
    out = template_out(template)
    await db.commit()
    return out


@router.delete("/templates/{template_id}", status_code=204, summary="Delete")
async def delete(template_id: IntId, user: CurrentUser, db: UserDb) -> Response:
    """Delete one of the tenant's templates (the built-in ones are read-only: 403)."""
    await db.delete(await _own(db, template_id, user))
    await db.commit()
    return Response(status_code=204)


@router.post(
    "/templates/{template_id}/use",
    status_code=201,
    response_model=PromptCreated,
    summary="Make a prompt from a template",
)
async def use(
    template_id: IntId,
    user: CurrentUser,
    db: UserDb,
    services: ServicesDep,
    body: TemplateUse | None = None,
) -> PromptCreated:
    """A new prompt whose version 1 has the template's sections and its default variables,
    overridden by the values given."""
    template = await _visible(db, template_id, user)
    given = body or TemplateUse()
    with domain_errors():
        prompt, saved = await prompts.create_prompt(
            db,
            Actor(tenant_id=user.tenant_id, user_id=user.user_id),
            name=given.name or template.name,
            description=template.description,
            first=template_version(template, given.variables),
            limits=limits_of(services.settings),
        )
    await db.commit()
    return PromptCreated(
        **prompt_fields(prompt), version=None if saved is None else saved_out(saved)
    )


@router.get("/techniques", response_model=TechniqueList, summary="Techniques")
async def techniques(
    user: CurrentUser, db: UserDb, page: Annotated[PageParams, Depends()], q: SearchQuery = None
) -> TechniqueList:
    """Prompt-engineering techniques by title; ``q`` matches title or description."""
    items, total = await catalog.search_techniques(db, q=q, limit=page.limit, offset=page.offset)
    return page_of(TechniqueList, map(TechniqueOut.model_validate, items), total, page)


@router.get("/techniques/{technique_id}", response_model=TechniqueOut, summary="One technique")
async def technique(technique_id: IntId, user: CurrentUser, db: UserDb) -> TechniqueOut:
    """One technique with its good and bad examples."""
    found = await catalog.get_technique(db, technique_id)
    if found is None:
        raise NotFound(f"no technique {technique_id}")
    return TechniqueOut.model_validate(found)
