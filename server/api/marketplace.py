"""The marketplace: share a prompt version, browse approved listings, fork one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from server.api.deps import CurrentUser, ServicesDep, UserDb
from server.api.prompt_views import domain_errors, limits_of, prompt_fields, saved_out
from server.api.routing import StudioRoute
from server.api.schemas.catalog import (
    ListingAuthor,
    ListingCreate,
    ListingList,
    ListingOut,
    OwnListingList,
    OwnListingOut,
)
from server.api.schemas.prompts import PromptCreated
from server.api.types import (
    FilterQuery,
    PageParams,
    ResourceId,
    SearchQuery,
    error_responses,
    page_of,
)
from server.errors import NotFound
from server.prompts import service as prompts
from server.prompts.context import Actor
from server.prompts.document import version_text
from server.prompts.service import Source, VersionInput, content_of
from storage.models import MarketplacePrompt
from storage.repositories import catalog
from storage.repositories.catalog import Listing, MarketplaceSort

router = APIRouter(
    route_class=StudioRoute, tags=["marketplace"], responses=error_responses(403, 404, 409)
)


def listing_out(item: Listing) -> ListingOut:
    """A listing as any signed-in user sees it (the author by name only)."""
    row = item.listing
    return ListingOut(
        id=row.id,
        title=row.title,
        description=row.description,
        content=row.content,
        category=row.category,
        tags=list(row.tags or []),
        is_featured=bool(row.is_featured),
        fork_count=row.fork_count,
        author=ListingAuthor(name=item.author_name),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def own_listing_out(item: Listing) -> OwnListingOut:
    """A listing with its moderation state (for its author and the operator)."""
    row = item.listing
    return OwnListingOut(
        **listing_out(item).model_dump(),
        status=row.status or "pending",  # type: ignore[arg-type]
        rejection_reason=row.rejection_reason,
        moderated_at=row.moderated_at,
        source_version_id=row.source_version_id,
    )


@router.post(
    "/marketplace", status_code=201, response_model=OwnListingOut, summary="Share a version"
)
async def submit(body: ListingCreate, user: CurrentUser, db: UserDb) -> OwnListingOut:
    """Submit one version of a prompt; it is listed once the operator approves it."""
    with domain_errors():
        version = await prompts.get_version(
            db, Actor(tenant_id=user.tenant_id, user_id=user.user_id), body.prompt_id, body.version
        )
    listing = MarketplacePrompt(
        author_id=user.user_id,
        tenant_id=user.tenant_id,
        title=body.title,
        description=body.description,
        content=version_text(content_of(version)),
        category=body.category,
        tags=list(dict.fromkeys(body.tags)),
        source_version_id=version.id,
    )
    db.add(listing)
    await db.flush()
    out = own_listing_out(Listing(listing, user.name))
    await db.commit()
    return out


@router.get("/marketplace", response_model=ListingList, summary="Browse listings")
async def browse(
    user: CurrentUser,
    db: UserDb,
    page: Annotated[PageParams, Depends()],
    q: SearchQuery = None,
    category: FilterQuery = None,
    tag: FilterQuery = None,
    featured: bool | None = None,
    sort: MarketplaceSort = "newest",
) -> ListingList:
    """Approved listings of every tenant: ``q`` matches title or description."""
    items, total = await catalog.search_listings(
        db,
        q=q,
        category=category,
        tag=tag,
        featured=featured,
        sort=sort,
        limit=page.limit,
        offset=page.offset,
    )
    return page_of(ListingList, map(listing_out, items), total, page)


@router.get("/marketplace/mine", response_model=OwnListingList, summary="My submissions")
async def mine(
    user: CurrentUser, db: UserDb, page: Annotated[PageParams, Depends()]
) -> OwnListingList:
    """The caller's own submissions with their status and any rejection reason."""
    items, total = await catalog.authored_listings(
        db, author_id=user.user_id, limit=page.limit, offset=page.offset
    )
    return page_of(OwnListingList, map(own_listing_out, items), total, page)


async def _readable(db: UserDb, listing_id: str, user_id: str) -> Listing:
    """An approved listing, or the caller's own in any state (else 404)."""
    item = await catalog.get_listing(db, listing_id)
    if item is None or (item.listing.status != "approved" and item.listing.author_id != user_id):
        raise NotFound(f"no listing {listing_id!r}")
    return item


@router.get("/marketplace/{listing_id}", response_model=ListingOut, summary="One listing")
async def read(listing_id: ResourceId, user: CurrentUser, db: UserDb) -> ListingOut:
    """An approved listing (or one's own submission)."""
    return listing_out(await _readable(db, listing_id, user.user_id))


@router.post(
    "/marketplace/{listing_id}/fork",
    status_code=201,
    response_model=PromptCreated,
    summary="Fork a listing",
)
async def fork(
    listing_id: ResourceId, user: CurrentUser, db: UserDb, services: ServicesDep
) -> PromptCreated:
    """A new prompt in the caller's tenant whose version 1 is the listing's content, recording
    where it came from; the listing's fork count goes up."""
    item = await _readable(db, listing_id, user.user_id)
    with domain_errors():
        prompt, saved = await prompts.create_prompt(
            db,
            Actor(tenant_id=user.tenant_id, user_id=user.user_id),
            name=item.listing.title,
            description=item.listing.description,
            first=VersionInput(
                content=item.listing.content, message=f"forked from the marketplace: {listing_id}"
            ),
            limits=limits_of(services.settings),
            source=Source(listing_id=item.listing.id),
        )
    await catalog.count_fork(db, item.listing.id)
    await db.commit()
    return PromptCreated(
        **prompt_fields(prompt), version=None if saved is None else saved_out(saved)
    )
