"""How a run ends up in the table: what it produced, and the version metrics it moves."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from server.llm.base import TokenUsage
from server.runs.errors import RunNotFound
from storage.models import Run
from storage.repositories import runs as repo

#: Longest error text kept on a run.
ERROR_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a run produced, whichever way it ended."""

    status: str
    output: str
    latency_ms: int
    usage: TokenUsage | None = None
    provider: str | None = None
    finish_reason: str | None = None
    error: str | None = None
    cache_hit: bool = False
    cache_entry_id: str | None = None
    cache_similarity: float | None = None


def usage_json(usage: TokenUsage | None) -> dict[str, int] | None:
    """``runs.token_usage`` as the schema stores it."""
    if usage is None:
        return None
    return {"prompt": usage.prompt, "completion": usage.completion, "total": usage.total}


async def finish_run(db: AsyncSession, run_id: int, tenant_id: str, outcome: Outcome) -> Run:
    """Write ``outcome`` onto the run and refresh its version's metrics (caller commits)."""
    run = await repo.get_run(db, run_id, tenant_id=tenant_id)
    if run is None:
        raise RunNotFound(f"run {run_id} disappeared while it ran")
    run.status = outcome.status
    run.output = outcome.output
    run.latency = outcome.latency_ms
    run.token_usage = usage_json(outcome.usage)
    run.provider = outcome.provider
    run.finish_reason = outcome.finish_reason
    run.error = None if outcome.error is None else outcome.error[:ERROR_LIMIT]
    run.cache_hit = outcome.cache_hit
    run.cache_entry_id = outcome.cache_entry_id
    run.cache_similarity = outcome.cache_similarity
    await db.flush()
    if run.prompt_version_id is not None:
        await repo.refresh_version_metrics(db, run.prompt_version_id)
    return run
