"""Templates, techniques and the marketplace: the queries behind the catalog endpoints.

Templates are global (``tenant_id IS NULL``, seeded, read-only) or a tenant's own. Marketplace
listings are the one surface shared across tenants: approved listings are visible to every
signed-in user; everything else about a listing stays with its author.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    exists,
    func,
    literal,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from storage.base import utcnow
from storage.models import MarketplacePrompt, Technique, Template, User

MarketplaceSort = Literal["newest", "popular", "title"]


def _contains_text(columns: Sequence[InstrumentedAttribute[Any]], q: str) -> ColumnElement[bool]:
    """Case-insensitive substring match on any of ``columns`` (the schema doc's search)."""
    pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(*(func.lower(column).like(pattern, escape="\\") for column in columns))


def json_array_contains(
    db: AsyncSession, column: InstrumentedAttribute[Any], value: str
) -> ColumnElement[bool]:
    """``value`` is an element of the JSON array in ``column`` (JSONB ``@>`` or json_each)."""
    if db.get_bind().dialect.name == "postgresql":
        return type_coerce(column, JSONB).contains([value])
    elements = func.json_each(column).table_valued("value")
    return exists(select(literal(1)).select_from(elements).where(elements.c.value == value))


async def _page(
    db: AsyncSession, statement: Select[Any], *, limit: int, offset: int
) -> tuple[list[Any], int]:
    total = int(
        await db.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    )
    rows = await db.scalars(statement.limit(limit).offset(offset))
    return list(rows.all()), total


# -- templates --------------------------------------------------------------------------------


def _visible_templates(tenant_id: str) -> ColumnElement[bool]:
    return or_(Template.tenant_id.is_(None), Template.tenant_id == tenant_id)


async def search_templates(
    db: AsyncSession,
    *,
    tenant_id: str,
    q: str | None,
    category: str | None,
    tag: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Template], int]:
    """Templates the tenant can see, newest first, filtered; with the total count."""
    statement = select(Template).where(_visible_templates(tenant_id))
    if q:
        statement = statement.where(_contains_text([Template.name, Template.description], q))
    if category:
        statement = statement.where(Template.category == category)
    if tag:
        statement = statement.where(json_array_contains(db, Template.tags, tag))
    statement = statement.order_by(Template.created_at.desc(), Template.id.desc())
    return await _page(db, statement, limit=limit, offset=offset)


async def template_categories(db: AsyncSession, *, tenant_id: str) -> list[tuple[str, int]]:
    """Each category of the templates the tenant can see, with how many it holds."""
    rows = await db.execute(
        select(Template.category, func.count())
        .where(_visible_templates(tenant_id))
        .group_by(Template.category)
        .order_by(Template.category)
    )
    return [(category, int(count)) for category, count in rows.all()]


async def get_template(db: AsyncSession, template_id: int, *, tenant_id: str) -> Template | None:
    """A template the tenant can see (global or its own), or None."""
    return await db.scalar(
        select(Template).where(Template.id == template_id, _visible_templates(tenant_id))
    )


# -- techniques -------------------------------------------------------------------------------


async def search_techniques(
    db: AsyncSession, *, q: str | None, limit: int, offset: int
) -> tuple[list[Technique], int]:
    """Techniques by title, optionally matching ``q`` in title or description."""
    statement = select(Technique)
    if q:
        statement = statement.where(_contains_text([Technique.title, Technique.description], q))
    return await _page(db, statement.order_by(Technique.title), limit=limit, offset=offset)


async def get_technique(db: AsyncSession, technique_id: int) -> Technique | None:
    """One technique, or None."""
    return await db.get(Technique, technique_id)


# -- marketplace ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """A marketplace listing with its author's display name."""

    listing: MarketplacePrompt
    author_name: str | None


def _with_author() -> Select[MarketplacePrompt, str]:
    return select(MarketplacePrompt, User.name).outerjoin(
        User, User.id == MarketplacePrompt.author_id
    )


_SORTS: dict[str, tuple[Any, ...]] = {
    "newest": (MarketplacePrompt.created_at.desc(), MarketplacePrompt.id),
    "popular": (
        MarketplacePrompt.fork_count.desc(),
        MarketplacePrompt.created_at.desc(),
        MarketplacePrompt.id,
    ),
    "title": (MarketplacePrompt.title, MarketplacePrompt.id),
}


async def _listings(
    db: AsyncSession,
    statement: Select[MarketplacePrompt, str],
    *,
    limit: int,
    offset: int,
) -> tuple[list[Listing], int]:
    total = int(
        await db.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    )
    rows = await db.execute(statement.limit(limit).offset(offset))
    return [Listing(listing, name) for listing, name in rows.all()], total


async def search_listings(
    db: AsyncSession,
    *,
    q: str | None,
    category: str | None,
    tag: str | None,
    featured: bool | None,
    sort: MarketplaceSort,
    limit: int,
    offset: int,
) -> tuple[list[Listing], int]:
    """Approved listings (every tenant's), filtered and sorted; with the total count."""
    statement = _with_author().where(MarketplacePrompt.status == "approved")
    if q:
        statement = statement.where(
            _contains_text([MarketplacePrompt.title, MarketplacePrompt.description], q)
        )
    if category:
        statement = statement.where(MarketplacePrompt.category == category)
    if tag:
        statement = statement.where(json_array_contains(db, MarketplacePrompt.tags, tag))
    if featured is not None:
        statement = statement.where(MarketplacePrompt.is_featured.is_(featured))
    statement = statement.order_by(*_SORTS[sort])
    return await _listings(db, statement, limit=limit, offset=offset)


async def moderation_queue(
    db: AsyncSession, *, status: str | None, limit: int, offset: int
) -> tuple[list[Listing], int]:
    """Listings of every tenant for the operator, oldest first, by status."""
    statement = _with_author()
    if status is not None:
        statement = statement.where(MarketplacePrompt.status == status)
    statement = statement.order_by(MarketplacePrompt.created_at, MarketplacePrompt.id)
    return await _listings(db, statement, limit=limit, offset=offset)


async def authored_listings(
    db: AsyncSession, *, author_id: str, limit: int, offset: int
) -> tuple[list[Listing], int]:
    """One user's own submissions, newest first, whatever their status."""
    statement = (
        _with_author()
        .where(MarketplacePrompt.author_id == author_id)
        .order_by(MarketplacePrompt.created_at.desc(), MarketplacePrompt.id)
    )
    return await _listings(db, statement, limit=limit, offset=offset)


async def get_listing(db: AsyncSession, listing_id: str) -> Listing | None:
    """A listing with its author's name, whatever its status (callers decide visibility)."""
    row = (await db.execute(_with_author().where(MarketplacePrompt.id == listing_id))).first()
    return None if row is None else Listing(row[0], row[1])


async def count_fork(db: AsyncSession, listing_id: str) -> None:
    """Add one to a listing's fork count (atomically, whatever runs at the same time)."""
    await db.execute(
        update(MarketplacePrompt)
        .where(MarketplacePrompt.id == listing_id)
        .values(fork_count=MarketplacePrompt.fork_count + 1)
    )


def moderate(listing: MarketplacePrompt, status: str, reason: str | None = None) -> None:
    """Record a moderator's decision on a listing."""
    listing.status = status
    listing.rejection_reason = reason
    listing.moderated_at = utcnow()
    listing.updated_at = utcnow()
