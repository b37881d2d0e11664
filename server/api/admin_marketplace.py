"""Marketplace moderation by the platform operator (operator key)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends

from server.api.deps import OperatorDb
from server.api.marketplace import own_listing_out
from server.api.routing import StudioRoute
from server.api.schemas.catalog import FeatureRequest, OwnListingList, OwnListingOut, RejectRequest
from server.api.types import PageParams, ResourceId, error_responses
from server.errors import NotFound
from storage.repositories import catalog
from storage.repositories.catalog import Listing

router = APIRouter(route_class=StudioRoute, tags=["operator"], responses=error_responses(404))

Status = Literal["pending", "approved", "rejected"]


async def _listing(db: OperatorDb, listing_id: str) -> Listing:
    item = await catalog.get_listing(db, listing_id)
    if item is None:
        raise NotFound(f"no listing {listing_id!r}")
    return item


@router.get("/admin/marketplace", response_model=OwnListingList, summary="Moderation queue")
async def queue(
    db: OperatorDb, page: Annotated[PageParams, Depends()], status: Status | None = "pending"
) -> OwnListingList:
    """Listings of every tenant by status (default ``pending``), oldest first."""
    items, total = await catalog.moderation_queue(
        db, status=status, limit=page.limit, offset=page.offset
    )
    return OwnListingList(
        items=[own_listing_out(i) for i in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "/admin/marketplace/{listing_id}/approve", response_model=OwnListingOut, summary="Approve"
)
async def approve(listing_id: ResourceId, db: OperatorDb) -> OwnListingOut:
    """List the submission for everyone."""
    item = await _listing(db, listing_id)
    catalog.moderate(item.listing, "approved")
    out = own_listing_out(item)
    await db.commit()
    return out


@router.post(
    "/admin/marketplace/{listing_id}/reject", response_model=OwnListingOut, summary="Reject"
)
async def reject(listing_id: ResourceId, body: RejectRequest, db: OperatorDb) -> OwnListingOut:
    """Refuse (or withdraw) a listing, with a reason its author sees."""
    item = await _listing(db, listing_id)
    catalog.moderate(item.listing, "rejected", body.reason)
    out = own_listing_out(item)
    await db.commit()
    return out


@router.put(
    "/admin/marketplace/{listing_id}/featured", response_model=OwnListingOut, summary="Feature"
)
async def feature(listing_id: ResourceId, body: FeatureRequest, db: OperatorDb) -> OwnListingOut:
    """Mark a listing as featured, or not."""
    item = await _listing(db, listing_id)
    item.listing.is_featured = body.featured
    out = own_listing_out(item)
    await db.commit()
    return out
