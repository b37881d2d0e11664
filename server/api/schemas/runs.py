"""Bodies of the runs endpoints: runs, streaming, compare, ratings, statistics, models."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from server.api.schemas.prompts import (
    MAX_RENDER_VALUES,
    LabelName,
    Sections,
    VariableName,
    VersionNumber,
)
from server.api.types import (
    ApiModel,
    ErrorDetail,
    ErrorEnvelope,
    LongText,
    Page,
    Tag,
    Text,
    UtcDatetime,
)
from server.api.types import error_responses as api_error_responses
from storage.models import Run, RunRating

#: A text id (UUID) in a body.
TextId = Annotated[Text, StringConstraints(min_length=1, max_length=100)]
#: A model name as the provider knows it.
ModelName = Annotated[Text, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Temperature = Annotated[float, Field(ge=0, le=2)]
MaxTokens = Annotated[int, Field(ge=1, le=1_000_000, strict=True)]
CacheMode = Literal["use", "bypass", "refresh"]
Notes = Annotated[Text, StringConstraints(max_length=10_000)]
#: Most targets a compare request may name (the server's own limit may be lower).
MAX_COMPARE_TARGETS = 32
MAX_RATING_TAGS = 20


class RunInput(ApiModel):
    """What to run: exactly one source, and the variable values."""

    prompt_version_id: TextId | None = None
    prompt_id: TextId | None = None
    label: LabelName | None = Field(
        default=None, description="with prompt_id: the label to run (default production/latest)"
    )
    session_id: TextId | None = Field(
        default=None, description="a live session: its text as it is now"
    )
    content: LongText | None = None
    sections: Sections | None = None
    variables: dict[VariableName, LongText] = Field(
        default_factory=dict, max_length=MAX_RENDER_VALUES
    )


class RunCreate(RunInput):
    """``POST /api/runs``."""

    model: ModelName
    temperature: Temperature = 0.7
    max_tokens: MaxTokens | None = None
    stream: bool = Field(default=False, description="answer as server-sent events")
    cache: CacheMode = "use"


class CompareTargetIn(ApiModel):
    """One target of a comparison; unset fields use the request's."""

    model: ModelName
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    prompt_version_id: TextId | None = None


class CompareCreate(RunInput):
    """``POST /api/runs/compare``: one input, several targets run concurrently."""

    targets: list[CompareTargetIn] = Field(min_length=1, max_length=MAX_COMPARE_TARGETS)
    temperature: Temperature = 0.7
    max_tokens: MaxTokens | None = None
    stream: bool = False
    cache: CacheMode = "use"


class TokenUsageOut(ApiModel):
    """Token counts."""

    prompt: int
    completion: int
    total: int


class CacheInfo(ApiModel):
    """What the semantic cache said: a hit, the nearest similarity, the entry."""

    hit: bool
    similarity: float | None
    entry_id: str | None


class RatingCreate(ApiModel):
    """``POST /api/runs/{id}/ratings``."""

    rating: Annotated[int, Field(ge=1, le=5, strict=True)]
    notes: Notes | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_RATING_TAGS)


class RatingOut(ApiModel):
    """A rating of a run."""

    id: int
    run_id: int
    rating: int | None
    notes: str | None
    tags: list[str]
    user_id: str | None
    created_at: UtcDatetime

    @classmethod
    def of(cls, row: RunRating) -> RatingOut:
        """The view of a stored rating."""
        return cls(
            id=row.id,
            run_id=row.run_id,
            rating=row.rating,
            notes=row.notes,
            tags=list(row.tags or []),
            user_id=row.user_id,
            created_at=row.created_at,
        )


class RunOut(ApiModel):
    """A run as the API shows it."""

    id: int
    status: Literal["running", "completed", "truncated", "failed", "cancelled"]
    model: str
    provider: str | None
    temperature: float
    max_tokens: int | None
    output: str
    latency: int | None = Field(description="milliseconds")
    token_usage: TokenUsageOut | None
    finish_reason: str | None
    error: str | None
    prompt_version_id: str | None
    session_id: str | None
    state_vector: str | None = Field(description="the session's Yjs state vector, base64")
    sections: dict[str, str]
    variables: list[dict[str, str]]
    cache: CacheInfo
    user_id: str | None
    created_at: UtcDatetime
    ratings: list[RatingOut]

    @classmethod
    def of(cls, run: Run) -> RunOut:
        """The view of a stored run (its ratings must be loaded)."""
        usage = run.token_usage
        return cls(
            id=run.id,
            status=run.status,  # type: ignore[arg-type]
            model=run.model,
            provider=run.provider,
            temperature=run.temperature / 100,
            max_tokens=run.max_tokens,
            output=run.output,
            latency=run.latency,
            token_usage=None if usage is None else TokenUsageOut(**usage),
            finish_reason=run.finish_reason,
            error=run.error,
            prompt_version_id=run.prompt_version_id,
            session_id=run.session_id,
            state_vector=(
                None
                if run.state_vector is None
                else base64.b64encode(run.state_vector).decode("ascii")
            ),
            sections={k: str(v) for k, v in (run.sections or {}).items()},
            variables=[{k: str(v) for k, v in item.items()} for item in run.variables or []],
            cache=CacheInfo(
                hit=run.cache_hit, similarity=run.cache_similarity, entry_id=run.cache_entry_id
            ),
            user_id=run.user_id,
            created_at=run.created_at,
            ratings=[RatingOut.of(rating) for rating in run.ratings],
        )


class RunList(Page):
    """A page of runs, newest first."""

    items: list[RunOut]


class ErrorOut(ApiModel):
    """An error in the house shape, inside a compare result."""

    code: str
    message: str
    field: str | None = None


class RunErrorDetail(ErrorDetail):
    """The error object of a runs answer: a failed run also names the run it recorded."""

    run_id: int | None = Field(default=None, description="the run the failure was recorded on")


class RunErrorEnvelope(ErrorEnvelope):
    """``{"error": {...}}`` of a runs answer."""

    error: RunErrorDetail


_ERROR_MEANINGS = {
    403: "not a member of the session",
    422: "invalid field, missing variables, unknown model, context too long",
    429: "provider rate limit or the tenant's daily quota (with Retry-After)",
    502: "the provider refused the credentials, failed, or answered nonsense",
    503: "the tenant's provider key cannot be opened",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses of the runs routes."""
    documented = api_error_responses(*statuses, meanings=_ERROR_MEANINGS)
    return {status: {**doc, "model": RunErrorEnvelope} for status, doc in documented.items()}


class CompareItem(ApiModel):
    """One target's result: its run (also recorded when it failed) and its error, if any."""

    target: int
    run: RunOut
    error: ErrorOut | None = None


class CompareResult(ApiModel):
    """Every target's result, in the order of the request's targets."""

    items: list[CompareItem]


class ModelStatsOut(ApiModel):
    """Per model over the period: the schema doc's query, plus success, cache and rating."""

    model: str
    run_count: int
    avg_latency: float | None
    total_tokens: int
    success_rate: float | None
    cache_hits: int
    avg_rating: float | None


class ModelStatsList(ApiModel):
    """``GET /api/stats/models``."""

    days: int
    items: list[ModelStatsOut]


class VersionMetricsOut(ApiModel):
    """A version's ``performance_metrics`` (kept current as runs and ratings arrive)."""

    prompt_id: str
    version: VersionNumber
    version_id: str
    performance_metrics: dict[str, Any]


class ModelOut(ApiModel):
    """A model the caller may run."""

    name: str
    provider: str
    source: Literal["offline", "server", "tenant"]


class ModelList(ApiModel):
    """``GET /api/models``."""

    items: list[ModelOut]
