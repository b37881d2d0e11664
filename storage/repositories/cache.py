"""Semantic cache queries: entries and tags, per-tenant configuration, daily statistics.

Every function takes the tenant id and filters on it: no query here can reach another tenant's
rows. Deletes return what they removed (:class:`RemovedEntry`), so the caller can keep its
in-memory indexes in step with the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.models.cache import (
    CacheConfig,
    CacheSimilarityBucket,
    CacheStatistics,
    CacheTag,
    SemanticCache,
)


@dataclass(frozen=True, slots=True)
class RemovedEntry:
    """An entry a delete removed: enough to drop it from an in-memory index."""

    id: str
    tenant_id: str | None
    scope_key: str
    embedder: str


@dataclass(frozen=True, slots=True)
class ScopeRows:
    """A scope's vectors as the index loads them, column by column (no per-row objects).

    ``vectors[i]`` is float32 bytes, or for rows older than the binary column the JSON list.
    """

    ids: list[str]
    vectors: list[bytes | list[float]]
    expires_at: list[datetime]


_REMOVED = (
    SemanticCache.id,
    SemanticCache.tenant_id,
    SemanticCache.scope_key,
    SemanticCache.embedder,
)


# -- configuration ---------------------------------------------------------------------------


async def get_config(db: AsyncSession, tenant_id: str) -> CacheConfig | None:
    """The tenant's cache configuration row, or None while it has none (defaults apply)."""
    statement = (
        select(CacheConfig).where(CacheConfig.tenant_id == tenant_id).order_by(CacheConfig.id)
    )
    return (await db.scalars(statement.limit(1))).first()


async def get_or_create_config(db: AsyncSession, tenant_id: str) -> CacheConfig:
    """The tenant's configuration row, inserted with the defaults if it has none."""
    config = await get_config(db, tenant_id)
    if config is None:
        config = CacheConfig(tenant_id=tenant_id)
        db.add(config)
        await db.flush()
    return config


async def configs_with_rules(db: AsyncSession) -> list[CacheConfig]:
    """Every tenant's configuration (the scheduler skips those with no rules)."""
    statement = select(CacheConfig).where(CacheConfig.tenant_id.is_not(None))
    return list((await db.scalars(statement.order_by(CacheConfig.id))).all())


# -- entries ---------------------------------------------------------------------------------


async def find_exact(
    db: AsyncSession, tenant_id: str, scope_key: str, prompt_hash: str, now: datetime
) -> SemanticCache | None:
    """The newest unexpired entry of the scope with exactly this prompt hash."""
    statement = (
        select(SemanticCache)
        .where(
            SemanticCache.tenant_id == tenant_id,
            SemanticCache.scope_key == scope_key,
            SemanticCache.prompt_hash == prompt_hash,
            SemanticCache.expires_at > now,
        )
        .order_by(SemanticCache.created_at.desc())
        .limit(1)
    )
    return (await db.scalars(statement)).first()


async def scope_rows(
    db: AsyncSession, tenant_id: str, scope_key: str, embedder: str, now: datetime
) -> ScopeRows:
    """The unexpired vectors of one scope made by one embedder (what an index loads).

    One query: the binary ``vector`` column, and the JSON ``embedding`` only for rows without
    it (parsing 100,000 JSON arrays is what made a load take seconds).
    """
    legacy = case((SemanticCache.vector.is_(None), SemanticCache.embedding), else_=null())
    statement = select(
        SemanticCache.id, SemanticCache.vector, legacy, SemanticCache.expires_at
    ).where(
        SemanticCache.tenant_id == tenant_id,
        SemanticCache.scope_key == scope_key,
        SemanticCache.embedder == embedder,
        SemanticCache.expires_at > now,
    )
    rows = ScopeRows([], [], [])
    # Through the connection: plain rows, without the ORM's per-row result machinery.
    connection = await db.connection()
    for entry_id, vector, embedding, expires_at in (await connection.execute(statement)).all():
        rows.ids.append(entry_id)
        rows.vectors.append(vector if vector is not None else (embedding or []))
        rows.expires_at.append(expires_at)
    return rows


async def get_entry(db: AsyncSession, tenant_id: str, entry_id: str) -> SemanticCache | None:
    """One entry of the tenant, with its tags; None for unknown ids and other tenants' ids."""
    statement = (
        select(SemanticCache)
        .options(selectinload(SemanticCache.tags))
        .where(SemanticCache.id == entry_id, SemanticCache.tenant_id == tenant_id)
    )
    return (await db.scalars(statement)).first()


async def insert_entry(db: AsyncSession, entry: SemanticCache, tags: Sequence[str]) -> None:
    """Insert a new entry and its tags (flushed)."""
    db.add(entry)
    await db.flush()
    for name in dict.fromkeys(tags):
        db.add(CacheTag(name=name, cache_id=entry.id))
    await db.flush()


async def record_hit(db: AsyncSession, entry_id: str, tokens: int, now: datetime) -> None:
    """Count one hit on an entry: hit count, tokens saved, last access (one atomic UPDATE)."""
    await db.execute(
        update(SemanticCache)
        .where(SemanticCache.id == entry_id)
        .values(
            hit_count=func.coalesce(SemanticCache.hit_count, 0) + 1,
            tokens_saved=func.coalesce(SemanticCache.tokens_saved, 0) + tokens,
            last_accessed_at=now,
        )
        .execution_options(synchronize_session=False)
    )


async def count_entries(db: AsyncSession, tenant_id: str) -> int:
    """How many entries the tenant holds (expired ones included, until purged)."""
    statement = select(func.count()).where(SemanticCache.tenant_id == tenant_id)
    return int(await db.scalar(statement) or 0)


async def least_recently_used(db: AsyncSession, tenant_id: str, count: int) -> list[str]:
    """Ids of the tenant's ``count`` least recently used entries (never used ones first)."""
    statement = (
        select(SemanticCache.id)
        .where(SemanticCache.tenant_id == tenant_id)
        .order_by(
            SemanticCache.last_accessed_at.asc().nulls_first(),
            SemanticCache.created_at.asc(),
            SemanticCache.id.asc(),
        )
        .limit(count)
    )
    return list((await db.scalars(statement)).all())


async def delete_where(db: AsyncSession, condition: ColumnElement[bool]) -> list[RemovedEntry]:
    """Delete the entries matching ``condition`` (tags go with them) and say which."""
    statement = delete(SemanticCache).where(condition).returning(*_REMOVED)
    rows = (await db.execute(statement.execution_options(synchronize_session=False))).all()
    return [RemovedEntry(*row) for row in rows]


async def delete_entries(
    db: AsyncSession, tenant_id: str, entry_ids: Sequence[str]
) -> list[RemovedEntry]:
    """Delete some of the tenant's entries by id (unknown ids are ignored)."""
    if not entry_ids:
        return []
    return await delete_where(
        db, and_(SemanticCache.tenant_id == tenant_id, SemanticCache.id.in_(list(entry_ids)))
    )


async def purge_expired(
    db: AsyncSession, now: datetime, tenant_id: str | None = None
) -> list[RemovedEntry]:
    """Delete expired entries: of one tenant, or of every tenant when ``tenant_id`` is None."""
    condition = SemanticCache.expires_at <= now
    if tenant_id is not None:
        condition = and_(condition, SemanticCache.tenant_id == tenant_id)
    return await delete_where(db, condition)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def glob_to_like(pattern: str) -> str:
    """A LIKE pattern (escape ``\\``) for a glob: ``*`` any run, ``?`` one character."""
    return _escape_like(pattern).replace("*", "%").replace("?", "_")


def _contains(text: str) -> str:
    return "%" + _escape_like(text) + "%"


def tag_condition(tenant_id: str, tag: str) -> ColumnElement[bool]:
    """The tenant's entries carrying ``tag``."""
    tagged = select(CacheTag.cache_id).where(CacheTag.name == tag)
    return and_(SemanticCache.tenant_id == tenant_id, SemanticCache.id.in_(tagged))


def pattern_condition(tenant_id: str, pattern: str) -> ColumnElement[bool]:
    """The tenant's entries whose prompt matches a glob (case-insensitive, whole prompt)."""
    like = func.lower(SemanticCache.prompt).like(func.lower(glob_to_like(pattern)), escape="\\")
    return and_(SemanticCache.tenant_id == tenant_id, like)


def older_than_condition(tenant_id: str, cutoff: datetime) -> ColumnElement[bool]:
    """The tenant's entries created before ``cutoff``."""
    return and_(SemanticCache.tenant_id == tenant_id, SemanticCache.created_at < cutoff)


def hit_count_condition(tenant_id: str, hits: int) -> ColumnElement[bool]:
    """The tenant's entries served at least ``hits`` times."""
    return and_(
        SemanticCache.tenant_id == tenant_id, func.coalesce(SemanticCache.hit_count, 0) >= hits
    )


def sections_condition(tenant_id: str, old_hash: str) -> ColumnElement[bool]:
    """The tenant's entries keyed on sections hashing to ``old_hash`` (rendered or source)."""
    return and_(
        SemanticCache.tenant_id == tenant_id,
        or_(SemanticCache.sections_hash == old_hash, SemanticCache.source_hash == old_hash),
    )


async def entries_where(
    db: AsyncSession, condition: ColumnElement[bool], limit: int
) -> list[SemanticCache]:
    """Up to ``limit`` entries matching ``condition``, oldest first."""
    statement = select(SemanticCache).where(condition).order_by(SemanticCache.created_at)
    return list((await db.scalars(statement.limit(limit))).all())


def _listing(
    tenant_id: str, q: str | None, tag: str | None, model: str | None
) -> Select[SemanticCache]:
    statement = select(SemanticCache).where(SemanticCache.tenant_id == tenant_id)
    if q:
        statement = statement.where(
            func.lower(SemanticCache.prompt).like(func.lower(_contains(q)), escape="\\")
        )
    if tag:
        statement = statement.where(
            SemanticCache.id.in_(select(CacheTag.cache_id).where(CacheTag.name == tag))
        )
    if model:
        statement = statement.where(SemanticCache.model == model)
    return statement


async def list_entries(
    db: AsyncSession,
    tenant_id: str,
    *,
    q: str | None = None,
    tag: str | None = None,
    model: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[SemanticCache], int]:
    """A page of the tenant's entries (newest first) and the total matching count."""
    listing = _listing(tenant_id, q, tag, model)
    total = int(await db.scalar(select(func.count()).select_from(listing.subquery())) or 0)
    statement = (
        listing.options(selectinload(SemanticCache.tags))
        .order_by(SemanticCache.created_at.desc(), SemanticCache.id)
        .limit(limit)
        .offset(offset)
    )
    return list((await db.scalars(statement)).all()), total


async def add_tags(db: AsyncSession, entry: SemanticCache, names: Sequence[str]) -> list[str]:
    """Add tags an entry does not carry yet; returns all its tags, sorted."""
    existing = {tag.name for tag in entry.tags}
    for name in dict.fromkeys(names):
        if name not in existing:
            entry.tags.append(CacheTag(name=name, cache_id=entry.id))
            existing.add(name)
    await db.flush()
    return sorted(existing)


# -- statistics ------------------------------------------------------------------------------


def _insert_for(dialect: str) -> Any:
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


async def add_statistics(
    db: AsyncSession,
    tenant_id: str,
    day: datetime,
    *,
    hits: int = 0,
    misses: int = 0,
    tokens_saved: int = 0,
    cost_saved: float = 0.0,
    judged_hits: int = 0,
    judged_correct: int = 0,
) -> None:
    """Add to the tenant's counters of ``day`` (midnight UTC), creating the row if needed.

    One ``INSERT … ON CONFLICT DO UPDATE`` adding to the stored values, so nodes counting at
    the same time never lose each other's increments.
    """
    dialect = (await db.connection()).dialect.name
    values = {
        "total_hits": hits,
        "total_misses": misses,
        "tokens_saved": tokens_saved,
        "cost_saved": cost_saved,
        "judged_hits": judged_hits,
        "judged_correct": judged_correct,
    }
    statement = _insert_for(dialect)(CacheStatistics).values(
        tenant_id=tenant_id, date=day, **values
    )
    table = CacheStatistics.__table__.c
    statement = statement.on_conflict_do_update(
        index_elements=[table.tenant_id, table.date],
        set_={name: table[name] + statement.excluded[name] for name in values},
    )
    await db.execute(statement)


async def add_to_bucket(db: AsyncSession, tenant_id: str, day: datetime, bucket: int) -> None:
    """Count one lookup in a nearest-similarity bucket of the tenant's ``day``."""
    dialect = (await db.connection()).dialect.name
    statement = _insert_for(dialect)(CacheSimilarityBucket).values(
        tenant_id=tenant_id, date=day, bucket=bucket, count=1
    )
    table = CacheSimilarityBucket.__table__.c
    statement = statement.on_conflict_do_update(
        index_elements=[table.tenant_id, table.date, table.bucket],
        set_={"count": table["count"] + 1},
    )
    await db.execute(statement)


async def statistics_since(
    db: AsyncSession, tenant_id: str, since: datetime
) -> list[CacheStatistics]:
    """The tenant's daily rows from ``since`` on, oldest first."""
    statement = (
        select(CacheStatistics)
        .where(CacheStatistics.tenant_id == tenant_id, CacheStatistics.date >= since)
        .order_by(CacheStatistics.date)
    )
    return list((await db.scalars(statement)).all())


async def histogram_since(db: AsyncSession, tenant_id: str, since: datetime) -> dict[int, int]:
    """Lookups per nearest-similarity bucket of the tenant from ``since`` on."""
    statement = (
        select(CacheSimilarityBucket.bucket, func.sum(CacheSimilarityBucket.count))
        .where(CacheSimilarityBucket.tenant_id == tenant_id, CacheSimilarityBucket.date >= since)
        .group_by(CacheSimilarityBucket.bucket)
    )
    return {int(bucket): int(count) for bucket, count in (await db.execute(statement)).all()}
