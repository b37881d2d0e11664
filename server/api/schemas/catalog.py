"""Bodies of the templates, techniques and marketplace endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from server.api.schemas.prompts import VariableIn
from server.api.types import (
    ApiModel,
    DbInt,
    Description,
    LongText,
    Name,
    Page,
    PatchModel,
    ResourceIdText,
    Tag,
    UtcDatetime,
    reject_null,
)

MAX_TAGS = 20


class TemplateSections(ApiModel):
    """A template's four sections (a missing one is empty)."""

    system: LongText = ""
    developer: LongText = ""
    user: LongText = ""
    context: LongText = ""


class TemplateVariable(ApiModel):
    """A template's default variable."""

    id: str
    name: str
    value: str


class TemplateOut(ApiModel):
    """A template: global (``tenant_id`` null, read-only) or the tenant's own."""

    id: int
    name: str
    description: str
    category: str
    tags: list[str]
    sections: dict[str, str]
    default_variables: list[TemplateVariable]
    tenant_id: str | None
    read_only: bool
    created_at: UtcDatetime


class TemplateList(Page):
    """One page of templates, newest first."""

    items: list[TemplateOut]


class CategoryCount(ApiModel):
    """A template category and how many templates it holds."""

    category: str
    count: int


class CategoryList(ApiModel):
    """Every category of the templates the tenant can see."""

    items: list[CategoryCount]


class TemplateCreate(ApiModel):
    """``POST /api/templates``: a template of the caller's tenant."""

    name: Name
    description: Description = ""
    category: Tag
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    sections: TemplateSections
    default_variables: list[VariableIn] = Field(default_factory=list, max_length=100)


class TemplateUpdate(PatchModel):
    """``PATCH /api/templates/{id}``: the fields given replace the stored ones."""

    name: Name | None = None
    description: Description | None = None
    category: Tag | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    sections: TemplateSections | None = None
    default_variables: list[VariableIn] | None = Field(default=None, max_length=100)

    _not_null = field_validator(
        "name", "description", "category", "tags", "sections", mode="before"
    )(reject_null)


class TemplateUse(ApiModel):
    """``POST /api/templates/{id}/use``: the new prompt's name and variable values."""

    name: Name | None = None
    variables: dict[Tag, LongText] = Field(default_factory=dict, max_length=100)


class TechniqueOut(ApiModel):
    """A prompt-engineering technique."""

    id: int
    title: str
    description: str
    good_example: str
    bad_example: str
    common_mistakes: list[str]
    snippet: str | None
    created_at: UtcDatetime


class TechniqueList(Page):
    """One page of techniques by title."""

    items: list[TechniqueOut]


class ListingCreate(ApiModel):
    """``POST /api/marketplace``: share one version of a prompt."""

    prompt_id: ResourceIdText
    version: DbInt
    title: Name
    description: Description
    category: Tag
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)


class ListingAuthor(ApiModel):
    """Who shared a listing: by name only, the one cross-tenant surface."""

    name: str | None


class ListingOut(ApiModel):
    """A listing as every signed-in user sees it."""

    id: str
    title: str
    description: str
    content: str
    category: str
    tags: list[str]
    is_featured: bool
    fork_count: int
    author: ListingAuthor
    created_at: UtcDatetime
    updated_at: UtcDatetime


class OwnListingOut(ListingOut):
    """A listing as its author (and the operator) sees it: with its moderation state."""

    status: Literal["pending", "approved", "rejected"]
    rejection_reason: str | None
    moderated_at: UtcDatetime | None
    source_version_id: str | None


class ListingList(Page):
    """One page of approved listings."""

    items: list[ListingOut]


class OwnListingList(Page):
    """One page of listings with their moderation state."""

    items: list[OwnListingOut]


class RejectRequest(ApiModel):
    """``POST /api/admin/marketplace/{id}/reject``."""

    reason: Description = Field(min_length=1)


class FeatureRequest(ApiModel):
    """``PUT /api/admin/marketplace/{id}/featured``."""

    featured: bool
