"""Cache statistics: per tenant and UTC day, hits, misses, savings, judged precision, and the
histogram of nearest similarities that a threshold is tuned against."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from storage.repositories import cache as repo

#: Histogram buckets per unit of similarity (bucket ``b`` holds ``[b/20, (b+1)/20)``).
BUCKETS_PER_UNIT = 20
#: The bucket of lookups whose scope held no comparable entry.
NO_NEIGHBOUR = -1


def day_of(moment: datetime) -> datetime:
    """Midnight (UTC, naive) of the day of ``moment``: the key of a statistics row."""
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_of(similarity: float | None) -> int:
    """The histogram bucket of a nearest similarity (negative similarities count as 0)."""
    if similarity is None or not math.isfinite(similarity):
        return NO_NEIGHBOUR
    return min(BUCKETS_PER_UNIT, max(0, math.floor(similarity * BUCKETS_PER_UNIT)))


async def record_lookup(
    db: AsyncSession,
    tenant_id: str,
    now: datetime,
    *,
    hit: bool,
    similarity: float | None,
    tokens_saved: int = 0,
    cost_saved: float = 0.0,
) -> None:
    """Count one lookup: a hit (with what it saved) or a miss, and its nearest similarity."""
    day = day_of(now)
    await repo.add_statistics(
        db,
        tenant_id,
        day,
        hits=int(hit),
        misses=int(not hit),
        tokens_saved=tokens_saved,
        cost_saved=cost_saved,
    )
    await repo.add_to_bucket(db, tenant_id, day, bucket_of(similarity))


@dataclass(frozen=True, slots=True)
class DailyStatistics:
    """One day's counters."""

    date: datetime
    hits: int
    misses: int
    tokens_saved: int
    cost_saved: float
    judged_hits: int
    judged_correct: int


@dataclass(frozen=True, slots=True)
class HistogramBucket:
    """Lookups whose nearest similarity fell in ``[low, high)`` (``low`` None: no neighbour)."""

    low: float | None
    high: float | None
    count: int


@dataclass(frozen=True, slots=True)
class CacheStatisticsReport:
    """A tenant's cache over the last ``days`` days (today included)."""

    days: int
    since: datetime
    hits: int
    misses: int
    tokens_saved: int
    cost_saved: float
    judged_hits: int
    judged_correct: int
    daily: tuple[DailyStatistics, ...]
    histogram: tuple[HistogramBucket, ...]

    @property
    def hit_rate(self) -> float | None:
        """Hits per lookup (None before any lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None

    @property
    def precision(self) -> float | None:
        """The judge's estimate: correct hits per judged hit (None before any judgement)."""
        return self.judged_correct / self.judged_hits if self.judged_hits else None


def _bucket(bucket: int, count: int) -> HistogramBucket:
    if bucket == NO_NEIGHBOUR:
        return HistogramBucket(None, None, count)
    low = bucket / BUCKETS_PER_UNIT
    return HistogramBucket(low, min(1.0, (bucket + 1) / BUCKETS_PER_UNIT), count)


async def statistics_report(
    db: AsyncSession, tenant_id: str, days: int, now: datetime
) -> CacheStatisticsReport:
    """The tenant's statistics over the last ``days`` UTC days (the schema doc's 7-day query)."""
    since = day_of(now) - timedelta(days=days - 1)
    rows = await repo.statistics_since(db, tenant_id, since)
    daily = tuple(
        DailyStatistics(
            date=row.date,
            hits=row.total_hits,
            misses=row.total_misses,
            tokens_saved=row.tokens_saved,
            cost_saved=row.cost_saved,
            judged_hits=row.judged_hits,
            judged_correct=row.judged_correct,
        )
        for row in rows
    )
    counts = await repo.histogram_since(db, tenant_id, since)
    histogram = tuple(_bucket(bucket, counts[bucket]) for bucket in sorted(counts))
    return CacheStatisticsReport(
        days=days,
        since=since,
        hits=sum(day.hits for day in daily),
        misses=sum(day.misses for day in daily),
        tokens_saved=sum(day.tokens_saved for day in daily),
        cost_saved=sum(day.cost_saved for day in daily),
        judged_hits=sum(day.judged_hits for day in daily),
        judged_correct=sum(day.judged_correct for day in daily),
        daily=daily,
        histogram=histogram,
    )
