"""Reading runs, rating them, and the statistics built from them (one call per endpoint)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.prompts.context import Actor
from server.runs.errors import InvalidRunInput, RunNotFound
from storage.base import utcnow
from storage.models import PromptVersion, Run, RunRating
from storage.repositories import prompts as prompts_repo
from storage.repositories import runs as repo
from storage.repositories.runs import ModelStats, RunFilter


async def get_run(db: AsyncSession, actor: Actor, run_id: int) -> Run:
    """The caller's tenant's run with its ratings."""
    run = await repo.get_run(db, run_id, tenant_id=actor.tenant_id)
    if run is None:
        raise RunNotFound(f"no run {run_id}")
    return run


async def list_runs(
    db: AsyncSession, actor: Actor, filters: RunFilter, *, limit: int, offset: int
) -> tuple[list[Run], int]:
    """The tenant's runs, newest first, filtered."""
    return await repo.list_runs(
        db, tenant_id=actor.tenant_id, filters=filters, limit=limit, offset=offset
    )


async def rate_run(
    db: AsyncSession,
    actor: Actor,
    run_id: int,
    *,
    rating: int,
    notes: str | None,
    tags: Sequence[str],
) -> RunRating:
    """Rate a run (1-5, notes, tags) and refresh its version's metrics (caller commits)."""
    run = await get_run(db, actor, run_id)
    if run.status == "running":
        raise InvalidRunInput("a run can be rated once it has finished", field="run_id")
    row = await repo.add_rating(
        db, run, rating=rating, notes=notes, tags=list(dict.fromkeys(tags)), user_id=actor.user_id
    )
    if run.prompt_version_id is not None:
        await repo.refresh_version_metrics(db, run.prompt_version_id)
    return row


async def version_metrics(
    db: AsyncSession, actor: Actor, prompt_id: str, number: int
) -> tuple[PromptVersion, dict[str, Any]]:
    """A version of the caller's tenant's prompt and its stored ``performance_metrics``."""
    prompt = await prompts_repo.get_prompt(db, prompt_id, tenant_id=actor.tenant_id)
    if prompt is None:
        raise RunNotFound(f"no prompt {prompt_id!r}")
    version = await prompts_repo.get_version(db, prompt.id, number)
    if version is None:
        raise RunNotFound(f"prompt {prompt_id!r} has no version {number}")
    return version, dict(version.performance_metrics or {})


async def model_stats(db: AsyncSession, actor: Actor, *, days: int) -> list[ModelStats]:
    """Per-model statistics of the tenant's runs over the last ``days`` days."""
    since = utcnow() - timedelta(days=days)
    return await repo.model_stats(db, tenant_id=actor.tenant_id, since=since)
