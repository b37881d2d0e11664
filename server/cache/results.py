"""The values the cache service takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from server.llm.base import TokenUsage
from storage.models.cache import SemanticCache


@dataclass(frozen=True, slots=True)
class CacheOptions:
    """The process-wide limits of the cache (from :class:`server.settings.Settings`)."""

    max_prompt_chars: int = 32_000
    max_entries_per_tenant: int = 100_000
    index_max_scopes: int = 1024
    sync_queue_limit: int = 1024
    judge_queue_limit: int = 64
    maintenance_interval_seconds: float = 60.0
    refresh_batch: int = 50
    prices: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A cached answer as the run service sees it."""

    id: str
    prompt: str
    response: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    created_at: datetime
    expires_at: datetime

    @property
    def usage(self) -> TokenUsage:
        """The token usage of the call that produced the answer (what a hit saves)."""
        return TokenUsage(
            self.prompt_tokens, self.completion_tokens, self.prompt_tokens + self.completion_tokens
        )

    @classmethod
    def of(cls, row: SemanticCache) -> CacheEntry:
        """The view of a stored row."""
        return cls(
            id=row.id,
            prompt=row.prompt,
            response=row.response,
            model=row.model,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """The result of :meth:`SemanticCacheService.lookup`.

    ``similarity`` is the nearest entry's cosine similarity (1.0 for an exact match; None when
    the scope held nothing comparable or the lookup was bypassed). ``bypassed`` says the cache
    was not consulted (disabled, temperature above the bypass, text too long).
    """

    hit: bool
    similarity: float | None = None
    entry: CacheEntry | None = None
    exact: bool = False
    bypassed: bool = False


@dataclass(slots=True)
class MaintenanceReport:
    """What one scheduled pass did (``ran`` False: another node held the lock)."""

    ran: bool
    deleted: int = 0
    refreshed: int = 0
    purged: int = 0
    tenants: list[str] = field(default_factory=list)
