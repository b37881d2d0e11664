"""Bodies of the semantic-cache endpoints: configuration, entries, invalidation, statistics."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictInt, StringConstraints, model_validator

from server.api.types import ApiModel, Page, Tag, Text, UtcDatetime
from server.cache.config import MAX_JUDGE_MODEL_CHARS, MAX_PATTERN_CHARS, MAX_RULES

RuleType = Literal["tag", "pattern", "time", "count"]
RuleAction = Literal["delete", "refresh"]
Pattern = Annotated[Text, StringConstraints(min_length=1, max_length=MAX_PATTERN_CHARS)]
JudgeModel = Annotated[
    Text, StringConstraints(min_length=1, max_length=MAX_JUDGE_MODEL_CHARS, strip_whitespace=True)
]
#: Tags added in one request.
MAX_TAGS_PER_REQUEST = 50


class InvalidationRule(ApiModel):
    """``{type, value, action}``: tag/pattern take text, time seconds, count hits."""

    type: RuleType
    value: Pattern | StrictInt
    action: RuleAction = "delete"


class CacheConfigOut(ApiModel):
    """A tenant's cache configuration (the defaults until it is first changed)."""

    enabled: bool
    similarity_threshold: float
    default_ttl_seconds: int
    max_cache_size: int
    invalidation_rules: list[InvalidationRule]
    bypass_temperature: float = Field(description="runs hotter than this skip the cache")
    precision_sample_rate: float = Field(description="share of semantic hits the judge checks")
    judge_model: str
    updated_at: UtcDatetime | None


class CacheConfigUpdate(ApiModel):
    """``PUT /api/cache/config``: the fields to change (at least one); the others stay."""

    enabled: bool | None = None
    similarity_threshold: float | None = Field(default=None, ge=0.5, le=1.0)
    default_ttl_seconds: StrictInt | None = Field(default=None, ge=1, le=365 * 24 * 3600)
    max_cache_size: StrictInt | None = Field(default=None, ge=1)
    invalidation_rules: list[InvalidationRule] | None = Field(default=None, max_length=MAX_RULES)
    bypass_temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    precision_sample_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    judge_model: JudgeModel | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> CacheConfigUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give at least one setting")
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class CacheEntryOut(ApiModel):
    """A cached answer."""

    id: str
    prompt: str
    response: str
    model: str
    temperature: float | None
    max_tokens: int | None
    embedder: str
    hit_count: int
    tokens_saved: int
    prompt_tokens: int
    completion_tokens: int
    tags: list[str]
    created_at: UtcDatetime
    last_accessed_at: UtcDatetime | None
    expires_at: UtcDatetime
    expired: bool


class CacheEntryList(Page):
    """A page of cache entries, newest first."""

    items: list[CacheEntryOut]


class TagsAdd(ApiModel):
    """``POST /api/cache/entries/{id}/tags``: tags to add (existing ones are kept)."""

    tags: list[Tag] = Field(min_length=1, max_length=MAX_TAGS_PER_REQUEST)


class InvalidateRequest(ApiModel):
    """``POST /api/cache/invalidate``: entries with ``tag`` or matching the glob ``pattern``
    (``*``, ``?``; case-insensitive, the whole prompt). With neither, the configured rules are
    applied now."""

    tag: Tag | None = None
    pattern: Pattern | None = None
    action: RuleAction = "delete"

    @model_validator(mode="after")
    def _one_selector(self) -> InvalidateRequest:
        if self.tag is not None and self.pattern is not None:
            raise ValueError("give tag or pattern, not both")
        return self


class InvalidateResult(ApiModel):
    """How many entries were deleted and refreshed."""

    deleted: int
    refreshed: int


class PurgeResult(ApiModel):
    """How many expired entries were deleted."""

    purged: int


class DailyStatsOut(ApiModel):
    """One UTC day."""

    date: UtcDatetime
    hits: int
    misses: int
    tokens_saved: int
    cost_saved: float
    judged_hits: int
    judged_correct: int


class HistogramBucketOut(ApiModel):
    """Lookups whose nearest similarity was in ``[low, high)``; ``low`` null: no neighbour."""

    low: float | None
    high: float | None
    count: int


class PrecisionOut(ApiModel):
    """The judge's sample: hits checked, found correct, and their ratio (null before any)."""

    judged: int
    correct: int
    estimate: float | None


class CacheStatsOut(ApiModel):
    """The schema doc's 7-day query (any ``days``), with hit rate, precision and histogram."""

    days: int
    since: UtcDatetime
    hits: int
    misses: int
    hit_rate: float | None
    tokens_saved: int
    cost_saved: float
    precision: PrecisionOut
    histogram: list[HistogramBucketOut]
    daily: list[DailyStatsOut]
