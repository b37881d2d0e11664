"""The tenant's daily run quota (``config.quotas.runsPerDay``), counted per UTC day."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.runs.errors import QuotaExceeded
from storage.repositories import runs as repo


def runs_per_day(config: Mapping[str, Any]) -> int | None:
    """The tenant's daily limit; None when it has none (or it is not a whole number ≥ 0)."""
    quotas = config.get("quotas")
    if not isinstance(quotas, Mapping):
        return None
    limit = quotas.get("runsPerDay")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        return None
    return limit


def day_start(now: datetime) -> datetime:
    """Midnight (UTC, naive like the stored timestamps) of ``now``'s day."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def seconds_until_next_day(now: datetime) -> int:
    """Whole seconds (at least 1) until the next UTC midnight."""
    remaining = (day_start(now) + timedelta(days=1) - now).total_seconds()
    return max(1, math.ceil(remaining))


async def check_quota(db: AsyncSession, tenant_id: str, *, now: datetime, wanted: int = 1) -> None:
    """Raise :class:`QuotaExceeded` unless ``wanted`` more runs fit today's quota.

    Call it after :func:`storage.repositories.runs.lock_tenant` in the transaction that inserts
    the runs, so concurrent requests are counted one after the other.
    """
    config = await repo.lock_tenant(db, tenant_id)
    limit = runs_per_day(config)
    if limit is None:
        return
    used = await repo.count_runs_since(db, tenant_id, day_start(now))
    if used + wanted > limit:
        raise QuotaExceeded(
            f"the tenant's quota of {limit} runs per day is used up ({used} today)",
            retry_after=seconds_until_next_day(now),
        )
