"""Runs and ratings: the tenant-scoped queries behind the runs API, metrics and statistics.

Every lookup takes the tenant; another tenant's run behaves exactly like an unknown one.
A version's ``performance_metrics`` are recomputed from its runs under the version's row lock
(:func:`refresh_version_metrics`), so concurrent runs never overwrite each other's counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, cast, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.elements import ColumnElement

from storage.models import Prompt, PromptVersion, Run, RunRating, Tenant

#: Statuses of runs that have finished (``running`` ones are still going).
FINISHED = ("completed", "truncated", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class RunFilter:
    """``GET /api/runs`` filters; None = not filtered."""

    prompt_version_id: str | None = None
    model: str | None = None
    min_rating: int | None = None
    tag: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class ModelStats:
    """One row of the per-model statistics (the schema doc's query, per tenant)."""

    model: str
    run_count: int
    avg_latency: float | None
    total_tokens: int
    success_rate: float | None
    cache_hits: int
    avg_rating: float | None


async def lock_tenant(db: AsyncSession, tenant_id: str) -> dict[str, Any]:
    """Take the tenant's row lock (serializes quota checks) and return its config."""
    # An UPDATE locks the row on PostgreSQL and takes SQLite's write lock: two runs of one
    # tenant count and insert one after the other, so a quota is never exceeded by a race.
    await db.execute(
        update(Tenant).where(Tenant.id == tenant_id).values(updated_at=Tenant.updated_at)
    )
    config = await db.scalar(select(Tenant.config).where(Tenant.id == tenant_id))
    return dict(config or {})


async def tenant_config(db: AsyncSession, tenant_id: str) -> dict[str, Any]:
    """The tenant's config (no lock)."""
    config = await db.scalar(select(Tenant.config).where(Tenant.id == tenant_id))
    return dict(config or {})


async def count_runs_since(db: AsyncSession, tenant_id: str, since: datetime) -> int:
    """Runs the tenant started at or after ``since``."""
    total = await db.scalar(
        select(func.count()).where(Run.tenant_id == tenant_id, Run.created_at >= since)
    )
    return int(total or 0)


async def insert_run(db: AsyncSession, run: Run) -> Run:
    """Insert ``run`` and give it its id."""
    db.add(run)
    await db.flush()
    return run


async def renew_lease(
    db: AsyncSession, run_id: int, node_id: str, until: datetime, output: str | None
) -> bool:
    """Extend a running run's lease (and store its partial ``output``); False when it is no
    longer this node's running run (finished, or swept meanwhile)."""
    values: dict[str, Any] = {"lease_expires_at": until}
    if output is not None:
        values["output"] = output
    renewed = await db.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == "running", Run.node_id == node_id)
        .values(**values)
        .returning(Run.id)
        .execution_options(synchronize_session=False)
    )
    return renewed.scalar() is not None


@dataclass(frozen=True, slots=True)
class SweptRun:
    """A run the sweep marked interrupted."""

    id: int
    node_id: str | None
    prompt_version_id: str | None


async def sweep_stale_runs(
    db: AsyncSession, now: datetime, *, unleased_before: datetime, limit: int, error: str
) -> list[SweptRun]:
    """Fail up to ``limit`` running runs whose lease expired before ``now`` (their partial
    output stays); runs with no lease (written before leases existed) count as expired once
    created before ``unleased_before``. Rows another sweeper holds are skipped (PostgreSQL)."""
    stale = or_(
        Run.lease_expires_at < now,
        and_(Run.lease_expires_at.is_(None), Run.created_at < unleased_before),
    )
    picked = [
        run_id
        for (run_id,) in (
            await db.execute(
                select(Run.id)
                .where(Run.status == "running", stale)
                .order_by(Run.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    ]
    if not picked:
        return []
    # What the update changed, not what the select saw: on SQLite another node's sweep may
    # have failed some of them between the two statements.
    changed = await db.execute(
        update(Run)
        .where(Run.id.in_(picked), Run.status == "running", stale)
        .values(status="failed", finish_reason="interrupted", error=error, lease_expires_at=None)
        .returning(Run.id, Run.node_id, Run.prompt_version_id)
        .execution_options(synchronize_session=False)
    )
    swept = [SweptRun(*row) for row in changed.all()]
    return swept


async def get_run(db: AsyncSession, run_id: int, *, tenant_id: str) -> Run | None:
    """The tenant's run with its ratings, or None."""
    return await db.scalar(
        select(Run)
        .where(Run.id == run_id, Run.tenant_id == tenant_id)
        .options(selectinload(Run.ratings))
        .execution_options(populate_existing=True)
    )


def _mean_rating(run_id: Any) -> Any:
    return (
        select(func.avg(RunRating.rating))
        .where(RunRating.run_id == run_id, RunRating.rating.is_not(None))
        .scalar_subquery()
    )


def _tag_condition(db: AsyncSession, tag: str) -> ColumnElement[bool]:
    contains: ColumnElement[bool]
    if db.get_bind().dialect.name == "postgresql":
        contains = RunRating.tags.op("@>")(cast(func.jsonb_build_array(tag), JSONB))
    else:
        each = func.json_each(RunRating.tags).table_valued("value")
        contains = exists(select(1).select_from(each).where(each.c.value == tag))
    return exists(select(1).where(RunRating.run_id == Run.id, contains))


async def list_runs(
    db: AsyncSession, *, tenant_id: str, filters: RunFilter, limit: int, offset: int
) -> tuple[list[Run], int]:
    """The tenant's runs matching ``filters``, newest first, and how many match in all."""
    conditions: list[ColumnElement[bool]] = [Run.tenant_id == tenant_id]
    if filters.prompt_version_id is not None:
        conditions.append(Run.prompt_version_id == filters.prompt_version_id)
    if filters.model is not None:
        conditions.append(Run.model == filters.model)
    if filters.session_id is not None:
        conditions.append(Run.session_id == filters.session_id)
    if filters.min_rating is not None:
        conditions.append(_mean_rating(Run.id) >= filters.min_rating)
    if filters.tag is not None:
        conditions.append(_tag_condition(db, filters.tag))
    where = and_(*conditions)
    total = await db.scalar(select(func.count()).select_from(Run).where(where))
    rows = await db.scalars(
        select(Run)
        .where(where)
        .options(selectinload(Run.ratings))
        .order_by(Run.created_at.desc(), Run.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def add_rating(
    db: AsyncSession,
    run: Run,
    *,
    rating: int,
    notes: str | None,
    tags: Sequence[str],
    user_id: str | None,
) -> RunRating:
    """Rate a run."""
    row = RunRating(run_id=run.id, rating=rating, notes=notes, tags=list(tags), user_id=user_id)
    db.add(row)
    await db.flush()
    return row


async def get_version_in_tenant(
    db: AsyncSession, version_id: str, *, tenant_id: str
) -> PromptVersion | None:
    """The prompt version with this id if its prompt belongs to the tenant."""
    return await db.scalar(
        select(PromptVersion)
        .join(Prompt, Prompt.id == PromptVersion.prompt_id)
        .where(PromptVersion.id == version_id, Prompt.tenant_id == tenant_id)
    )


def _one_if(condition: ColumnElement[bool]) -> Any:
    return case((condition, 1.0), else_=0.0)


def _total_tokens() -> Any:
    return Run.token_usage["total"].as_integer()


async def refresh_version_metrics(db: AsyncSession, version_id: str) -> dict[str, Any]:
    """Recompute a version's ``performance_metrics`` from its finished runs and ratings."""
    # Lock the version row first: a concurrent refresh waits and then sees this one's run.
    await db.execute(
        update(PromptVersion)
        .where(PromptVersion.id == version_id)
        .values(performance_metrics=PromptVersion.performance_metrics)
    )
    finished = and_(Run.prompt_version_id == version_id, Run.status.in_(FINISHED))
    row = (
        await db.execute(
            select(
                func.count(),
                func.avg(Run.latency),
                func.avg(_total_tokens()),
                func.sum(_one_if(Run.status == "completed")),
            ).where(finished)
        )
    ).one()
    count, avg_latency, avg_tokens, completed = row
    rating = (
        await db.execute(
            select(func.avg(RunRating.rating), func.count(RunRating.rating))
            .join(Run, Run.id == RunRating.run_id)
            .where(Run.prompt_version_id == version_id)
        )
    ).one()
    metrics: dict[str, Any] = {
        "runCount": int(count or 0),
        "avgLatency": _rounded(avg_latency),
        "avgTokens": _rounded(avg_tokens),
        "successRate": _rounded(float(completed) / count if count else None, 4),
        "avgRating": _rounded(rating[0], 4),
        "ratingCount": int(rating[1] or 0),
    }
    await db.execute(
        update(PromptVersion)
        .where(PromptVersion.id == version_id)
        .values(performance_metrics=metrics)
    )
    return metrics


async def model_stats(db: AsyncSession, *, tenant_id: str, since: datetime) -> list[ModelStats]:
    """Per model since ``since``: runs, mean latency, tokens, success rate, cache hits, rating."""
    rows = await db.execute(
        select(
            Run.model,
            func.count(),
            func.avg(Run.latency),
            func.coalesce(func.sum(_total_tokens()), 0),
            func.avg(_one_if(Run.status == "completed")),
            func.coalesce(func.sum(_one_if(Run.cache_hit.is_(True))), 0),
        )
        .where(Run.tenant_id == tenant_id, Run.created_at >= since, Run.status.in_(FINISHED))
        .group_by(Run.model)
        .order_by(func.count().desc(), Run.model)
    )
    ratings: dict[str, Any] = dict(
        (
            await db.execute(
                select(Run.model, func.avg(RunRating.rating))
                .join(Run, Run.id == RunRating.run_id)
                .where(Run.tenant_id == tenant_id, Run.created_at >= since)
                .group_by(Run.model)
            )
        ).all()
    )
    return [
        ModelStats(
            model=model,
            run_count=int(count),
            avg_latency=_rounded(latency),
            total_tokens=int(tokens or 0),
            success_rate=_rounded(success, 4),
            cache_hits=int(hits or 0),
            avg_rating=_rounded(ratings.get(model), 4),
        )
        for model, count, latency, tokens, success, hits in rows
    ]


def _rounded(value: Any, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)
