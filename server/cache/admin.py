"""What the cache's REST endpoints do: configuration, entries, invalidation, statistics.

Each function is one endpoint's domain operation, scoped to one tenant; unknown ids and other
tenants' ids are the same :class:`~server.cache.errors.EntryNotFound`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from server.cache.config import CachePolicy, RuleAction, policy_of, updated_policy, write_policy
from server.cache.errors import EntryNotFound, InvalidCacheConfig
from server.cache.rules import InvalidationOutcome
from server.cache.service import SemanticCacheService
from server.cache.statistics import CacheStatisticsReport, statistics_report
from storage.base import utcnow
from storage.models.cache import SemanticCache
from storage.repositories import cache as repo


async def update_config(
    service: SemanticCacheService, db: AsyncSession, tenant_id: str, changes: Mapping[str, object]
) -> CachePolicy:
    """Validate and store changes to the tenant's configuration; returns the new policy."""
    row = await repo.get_or_create_config(db, tenant_id)
    policy = updated_policy(
        policy_of(row), changes, max_cache_size=service.options.max_entries_per_tenant
    )
    write_policy(row, policy)
    await db.flush()
    await db.refresh(row)
    if "max_cache_size" in changes:
        await service.evict(db, tenant_id, policy)
    return policy_of(row)


async def list_entries(
    db: AsyncSession,
    tenant_id: str,
    *,
    q: str | None,
    tag: str | None,
    model: str | None,
    limit: int,
    offset: int,
) -> tuple[list[SemanticCache], int]:
    """A page of the tenant's entries (newest first) and how many match in all."""
    return await repo.list_entries(
        db, tenant_id, q=q, tag=tag, model=model, limit=limit, offset=offset
    )


async def get_entry(db: AsyncSession, tenant_id: str, entry_id: str) -> SemanticCache:
    """One of the tenant's entries, with its tags."""
    entry = await repo.get_entry(db, tenant_id, entry_id)
    if entry is None:
        raise EntryNotFound(f"no cache entry {entry_id!r}")
    return entry


async def delete_entry(
    service: SemanticCacheService, db: AsyncSession, tenant_id: str, entry_id: str
) -> None:
    """Delete one of the tenant's entries."""
    removed = await repo.delete_entries(db, tenant_id, [entry_id])
    if not removed:
        raise EntryNotFound(f"no cache entry {entry_id!r}")
    service.changes.removed(db, removed)


async def tag_entry(
    db: AsyncSession, tenant_id: str, entry_id: str, tags: Sequence[str]
) -> SemanticCache:
    """Add tags to one of the tenant's entries; returns the entry with all its tags."""
    entry = await get_entry(db, tenant_id, entry_id)
    await repo.add_tags(db, entry, tags)
    return entry


async def invalidate(
    service: SemanticCacheService,
    db: AsyncSession,
    tenant_id: str,
    *,
    tag: str | None = None,
    pattern: str | None = None,
    action: RuleAction = "delete",
) -> InvalidationOutcome:
    """Delete (or refresh) the entries with ``tag`` or matching ``pattern``, now.

    With neither, the tenant's configured rules are applied now (every match, expired or not).
    """
    if tag is not None and pattern is not None:
        raise InvalidCacheConfig("give tag or pattern, not both", field="pattern")
    now = utcnow()
    policy = await service.policy(db, tenant_id)
    if tag is not None:
        condition = repo.tag_condition(tenant_id, tag)
    elif pattern is not None:
        condition = repo.pattern_condition(tenant_id, pattern)
    else:
        return await service.invalidator.apply_rules(db, tenant_id, policy, now, scheduled=False)
    return await service.invalidator.apply(db, tenant_id, policy, condition, action, now)


async def purge(service: SemanticCacheService, db: AsyncSession, tenant_id: str) -> int:
    """Delete the tenant's expired entries now; returns how many."""
    return await service.invalidator.purge(db, utcnow(), tenant_id)


async def statistics(db: AsyncSession, tenant_id: str, days: int) -> CacheStatisticsReport:
    """The tenant's statistics over the last ``days`` days."""
    return await statistics_report(db, tenant_id, days, utcnow())
