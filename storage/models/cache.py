"""Semantic cache: entries, tags, daily statistics and configuration (schema doc §12–15).

Columns marked "ours (0014_semantic_cache_scope)" key each entry on the scope it was made in
(model, temperature, max_tokens, the non-user sections) and on the embedder that made its vector,
keep what a refresh needs, and record the judge's precision samples and the nearest-similarity
histogram per tenant and day.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Double, ForeignKey, Index, LargeBinary, UniqueConstraint, func, text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, JSONType, new_uuid, utcnow

if TYPE_CHECKING:
    from storage.models.tenancy import Tenant


class SemanticCache(Base):
    """A cached model response, found by exact prompt hash or embedding similarity."""

    __tablename__ = "semantic_cache"

    id: Mapped[str] = mapped_column(primary_key=True, default=new_uuid)
    prompt: Mapped[str]
    prompt_hash: Mapped[str]
    # The embedding vector as a JSON array of floats.
    embedding: Mapped[list[float]] = mapped_column(JSONType)
    response: Mapped[str]
    model: Mapped[str]
    hit_count: Mapped[int | None] = mapped_column(default=0, server_default=text("0"))
    tokens_saved: Mapped[int | None] = mapped_column(default=0, server_default=text("0"))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    last_accessed_at: Mapped[datetime | None] = mapped_column(
        default=utcnow, server_default=func.now()
    )
    expires_at: Mapped[datetime]
    # Ours (0007_tenant_scoping): a shared cache would hand one tenant's responses to another.
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    # Ours (0014_semantic_cache_scope): an answer never crosses models or settings, and vectors
    # of different embedders are never compared. ``scope_key`` hashes model, temperature,
    # max_tokens and ``sections_hash`` (the rendered system/developer/context sections).
    scope_key: Mapped[str] = mapped_column(default="", server_default=text("''"))
    sections_hash: Mapped[str] = mapped_column(default="", server_default=text("''"))
    # Hash of the unrendered prompt-version sections the entry came from (retirement).
    source_hash: Mapped[str | None]
    # Stored x100, as runs.temperature.
    temperature: Mapped[int | None]
    max_tokens: Mapped[int | None]
    embedder: Mapped[str] = mapped_column(default="", server_default=text("''"))
    # The rendered non-user sections, so a refresh can run the same prompt again.
    sections: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    # The same vector as little-endian float32 bytes: loading a scope's index reads these
    # (a 100,000-entry scope parses in milliseconds instead of seconds of JSON).
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Token usage of the call that produced ``response``: what each hit saves.
    prompt_tokens: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    completion_tokens: Mapped[int] = mapped_column(default=0, server_default=text("0"))

    tenant: Mapped[Tenant | None] = relationship()
    tags: Mapped[list[CacheTag]] = relationship(
        back_populates="cache", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("idx_cache_prompt_hash", "prompt_hash"),
        Index("idx_cache_model", "model"),
        Index("idx_cache_expires", "expires_at"),
        Index("idx_cache_user", "user_id"),
        Index("idx_cache_tenant", "tenant_id"),
        Index("idx_cache_scope", "tenant_id", "scope_key", "embedder"),
        Index("idx_cache_sections", "tenant_id", "sections_hash"),
        Index("idx_cache_lru", "tenant_id", "last_accessed_at"),
    )


class CacheTag(Base):
    """A tag on a cache entry, for organisation and tag-based invalidation."""

    __tablename__ = "cache_tags"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str]
    cache_id: Mapped[str] = mapped_column(ForeignKey("semantic_cache.id", ondelete="CASCADE"))

    cache: Mapped[SemanticCache] = relationship(back_populates="tags")

    __table_args__ = (
        Index("idx_cache_tags_name", "name"),
        Index("idx_cache_tags_cache", "cache_id"),
    )


class CacheStatistics(Base):
    """Cache hits, misses and savings for one day (per tenant)."""

    __tablename__ = "cache_statistics"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    date: Mapped[datetime] = mapped_column()
    total_hits: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    total_misses: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    tokens_saved: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    cost_saved: Mapped[float] = mapped_column(Double, default=0.0, server_default=text("0"))
    # Ours (0014_semantic_cache_scope): hits checked by the judge model, and how many of them
    # it found correct (the estimated precision is their ratio).
    judged_hits: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    judged_correct: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # Ours (0007_tenant_scoping); the doc's unique(date) becomes unique(tenant_id, date).
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))

    tenant: Mapped[Tenant | None] = relationship()

    __table_args__ = (
        # Also serves lookups by tenant_id (its leading column), so no separate index.
        UniqueConstraint("tenant_id", "date"),
        # NULLs are distinct in a unique constraint: keep the doc's one-row-per-date rule for
        # the rows that belong to no tenant.
        Index(
            "uq_cache_statistics_date_global",
            "date",
            unique=True,
            postgresql_where=text("tenant_id IS NULL"),
            sqlite_where=text("tenant_id IS NULL"),
        ),
        Index("idx_cache_stats_date", date.desc()),
    )


class CacheConfig(Base):
    """Cache settings: on/off, similarity threshold, TTL, size bound, invalidation rules."""

    __tablename__ = "cache_config"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    similarity_threshold: Mapped[float] = mapped_column(
        Double, default=0.85, server_default=text("0.85")
    )
    default_ttl_seconds: Mapped[int] = mapped_column(default=3600, server_default=text("3600"))
    max_cache_size: Mapped[int] = mapped_column(default=1000, server_default=text("1000"))
    invalidation_rules: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSONType, default=list, server_default=text("'[]'")
    )
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )
    # Ours (0007_tenant_scoping): each tenant configures its own cache.
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    # Ours (0014_semantic_cache_scope): runs hotter than this bypass the cache; the share of
    # semantic hits the judge model checks, and which model judges.
    bypass_temperature: Mapped[float] = mapped_column(
        Double, default=1.0, server_default=text("1.0")
    )
    precision_sample_rate: Mapped[float] = mapped_column(
        Double, default=0.1, server_default=text("0.1")
    )
    judge_model: Mapped[str] = mapped_column(default="offline", server_default=text("'offline'"))

    tenant: Mapped[Tenant | None] = relationship()

    __table_args__ = (Index("idx_cache_config_tenant", "tenant_id"),)


class CacheSimilarityBucket(Base):
    """Ours (0014_semantic_cache_scope): how many lookups found their nearest entry in one
    similarity bucket, per tenant and day (the histogram to tune the threshold against).

    ``bucket`` is ``floor(similarity * 20)``, 0-20 (20 holds exact similarity 1.0); lookups
    whose scope held no comparable entry are counted in bucket -1.
    """

    __tablename__ = "cache_similarity_buckets"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    date: Mapped[datetime]
    bucket: Mapped[int]
    count: Mapped[int] = mapped_column(default=0, server_default=text("0"))

    __table_args__ = (UniqueConstraint("tenant_id", "date", "bucket"),)
