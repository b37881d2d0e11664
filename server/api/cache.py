"""The semantic cache over REST (login token; everything is the caller's tenant's).

``GET/PUT /api/cache/config``, ``GET /api/cache/entries?q=&tag=&model=``, ``GET/DELETE
/api/cache/entries/{id}``, ``POST /api/cache/entries/{id}/tags``, ``POST /api/cache/invalidate``,
``POST /api/cache/purge``, ``GET /api/cache/stats?days=7``. Each endpoint parses, calls one
:mod:`server.cache.admin` function and shapes the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from server.api.deps import CurrentUser, ServicesDep, UserDb
from server.api.routing import StudioRoute
from server.api.schemas import cache as schemas
from server.api.types import PageParams, ResourceId, Tag, error_responses
from server.cache import SemanticCacheService, admin
from server.cache.config import CachePolicy, rules_json
from server.cache.errors import CacheError, EntryNotFound
from server.errors import NotFound, Unavailable, ValidationFailed
from server.services import Services
from storage.base import utcnow
from storage.models.cache import SemanticCache

router = APIRouter(
    route_class=StudioRoute, tags=["cache"], responses=error_responses(403, 404, 409, 503)
)

Page = Annotated[PageParams, Depends()]
MAX_STATS_DAYS = 366


def _cache(services: Services) -> SemanticCacheService:
    if services.cache is None:
        raise Unavailable("the semantic cache is not running on this node")
    return services.cache


@contextmanager
def _domain_errors() -> Iterator[None]:
    try:
        yield
    except EntryNotFound as exc:
        raise NotFound(exc.message) from exc
    except CacheError as exc:
        raise ValidationFailed(exc.message, field=exc.field) from exc


def _config_out(policy: CachePolicy) -> schemas.CacheConfigOut:
    return schemas.CacheConfigOut(
        enabled=policy.enabled,
        similarity_threshold=policy.similarity_threshold,
        default_ttl_seconds=policy.default_ttl_seconds,
        max_cache_size=policy.max_cache_size,
        invalidation_rules=[
            schemas.InvalidationRule.model_validate(rule) for rule in rules_json(policy.rules)
        ],
        bypass_temperature=policy.bypass_temperature,
        precision_sample_rate=policy.precision_sample_rate,
        judge_model=policy.judge_model,
        updated_at=policy.updated_at,
    )


def _entry_out(entry: SemanticCache) -> schemas.CacheEntryOut:
    return schemas.CacheEntryOut(
        id=entry.id,
        prompt=entry.prompt,
        response=entry.response,
        model=entry.model,
        temperature=None if entry.temperature is None else entry.temperature / 100,
        max_tokens=entry.max_tokens,
        embedder=entry.embedder,
        hit_count=entry.hit_count or 0,
        tokens_saved=entry.tokens_saved or 0,
        prompt_tokens=entry.prompt_tokens,
        completion_tokens=entry.completion_tokens,
        tags=sorted(tag.name for tag in entry.tags),
        created_at=entry.created_at,
        last_accessed_at=entry.last_accessed_at,
        expires_at=entry.expires_at,
        expired=entry.expires_at <= utcnow(),
    )


@router.get("/cache/config", response_model=schemas.CacheConfigOut, summary="Cache settings")
async def get_config(
    user: CurrentUser, db: UserDb, services: ServicesDep
) -> schemas.CacheConfigOut:
    """The tenant's cache configuration (the defaults until it is first changed)."""
    return _config_out(await _cache(services).policy(db, user.tenant_id))


@router.put("/cache/config", response_model=schemas.CacheConfigOut, summary="Change settings")
async def put_config(
    body: schemas.CacheConfigUpdate, user: CurrentUser, db: UserDb, services: ServicesDep
) -> schemas.CacheConfigOut:
    """Change the given settings; a smaller ``max_cache_size`` evicts at once."""
    changes = body.model_dump(include=body.model_fields_set)
    with _domain_errors():
        policy = await admin.update_config(_cache(services), db, user.tenant_id, changes)
    await db.commit()
    return _config_out(policy)


@router.get("/cache/entries", response_model=schemas.CacheEntryList, summary="List entries")
async def list_entries(
    user: CurrentUser,
    db: UserDb,
    page: Page,
    q: Annotated[str | None, Query(max_length=200, description="prompt contains")] = None,
    tag: Annotated[Tag | None, Query(description="carries this tag")] = None,
    model: Annotated[str | None, Query(max_length=200, description="made with this model")] = None,
) -> schemas.CacheEntryList:
    """The tenant's entries, newest first (expired ones too, until purged)."""
    items, total = await admin.list_entries(
        db, user.tenant_id, q=q, tag=tag, model=model, limit=page.limit, offset=page.offset
    )
    return schemas.CacheEntryList(
        items=[_entry_out(item) for item in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/cache/entries/{entry_id}", response_model=schemas.CacheEntryOut, summary="One entry")
async def get_entry(entry_id: ResourceId, user: CurrentUser, db: UserDb) -> schemas.CacheEntryOut:
    """One entry with its tags."""
    with _domain_errors():
        return _entry_out(await admin.get_entry(db, user.tenant_id, entry_id))


@router.delete("/cache/entries/{entry_id}", status_code=204, summary="Delete an entry")
async def delete_entry(
    entry_id: ResourceId, user: CurrentUser, db: UserDb, services: ServicesDep
) -> None:
    """Delete one entry (on every node's index too)."""
    with _domain_errors():
        await admin.delete_entry(_cache(services), db, user.tenant_id, entry_id)
    await db.commit()


@router.post(
    "/cache/entries/{entry_id}/tags",
    status_code=200,
    response_model=schemas.CacheEntryOut,
    summary="Tag an entry",
)
async def tag_entry(
    entry_id: ResourceId, body: schemas.TagsAdd, user: CurrentUser, db: UserDb
) -> schemas.CacheEntryOut:
    """Add tags (for tag rules and tag invalidation); the entry with all its tags."""
    with _domain_errors():
        entry = await admin.tag_entry(db, user.tenant_id, entry_id, body.tags)
    await db.commit()
    return _entry_out(entry)


@router.post(
    "/cache/invalidate",
    status_code=200,
    response_model=schemas.InvalidateResult,
    summary="Invalidate entries",
)
async def invalidate(
    body: schemas.InvalidateRequest, user: CurrentUser, db: UserDb, services: ServicesDep
) -> schemas.InvalidateResult:
    """Delete (or refresh) entries by tag or pattern now; with neither, apply the rules now."""
    with _domain_errors():
        outcome = await admin.invalidate(
            _cache(services),
            db,
            user.tenant_id,
            tag=body.tag,
            pattern=body.pattern,
            action=body.action,
        )
    await db.commit()
    return schemas.InvalidateResult(deleted=outcome.deleted, refreshed=outcome.refreshed)


@router.post(
    "/cache/purge", status_code=200, response_model=schemas.PurgeResult, summary="Purge expired"
)
async def purge(user: CurrentUser, db: UserDb, services: ServicesDep) -> schemas.PurgeResult:
    """Delete the tenant's expired entries now (the schedule does it too)."""
    purged = await admin.purge(_cache(services), db, user.tenant_id)
    await db.commit()
    return schemas.PurgeResult(purged=purged)


@router.get("/cache/stats", response_model=schemas.CacheStatsOut, summary="Cache statistics")
async def stats(
    user: CurrentUser,
    db: UserDb,
    days: Annotated[
        int, Query(ge=1, le=MAX_STATS_DAYS, description="UTC days, today included")
    ] = 7,
) -> schemas.CacheStatsOut:
    """Hits, misses, savings, the judge's precision and the nearest-similarity histogram."""
    report = await admin.statistics(db, user.tenant_id, days)
    return schemas.CacheStatsOut(
        days=report.days,
        since=report.since,
        hits=report.hits,
        misses=report.misses,
        hit_rate=report.hit_rate,
        tokens_saved=report.tokens_saved,
        cost_saved=report.cost_saved,
        precision=schemas.PrecisionOut(
            judged=report.judged_hits, correct=report.judged_correct, estimate=report.precision
        ),
        histogram=[
            schemas.HistogramBucketOut(low=b.low, high=b.high, count=b.count)
            for b in report.histogram
        ],
        daily=[
            schemas.DailyStatsOut(
                date=day.date,
                hits=day.hits,
                misses=day.misses,
                tokens_saved=day.tokens_saved,
                cost_saved=day.cost_saved,
                judged_hits=day.judged_hits,
                judged_correct=day.judged_correct,
            )
            for day in report.daily
        ],
    )
