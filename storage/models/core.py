"""Core tables: prompt templates, techniques, runs and their ratings (schema doc §1–4)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Double, ForeignKey, Index, LargeBinary, false, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, JSONType, postgresql_only, utcnow

if TYPE_CHECKING:
    from storage.models.prompts import PromptVersion
    from storage.models.tenancy import Tenant


class Template(Base):
    """A ready-to-use prompt template (sections plus default variables)."""

    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str]
    description: Mapped[str]
    category: Mapped[str]
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=text("'[]'"))
    sections: Mapped[dict[str, Any]] = mapped_column(JSONType)
    default_variables: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType, default=list, server_default=text("'[]'")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    # Ours (0012_catalog_tenancy): the tenant that owns a template it added; NULL for the
    # global, seeded templates every tenant reads and none may change.
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))

    __table_args__ = (
        Index("idx_templates_category", "category"),
        Index("idx_templates_created_at", created_at.desc()),
        Index("idx_templates_tenant", "tenant_id"),
        postgresql_only(Index("idx_templates_tags", "tags", postgresql_using="gin")),
    )


class Technique(Base):
    """A prompt-engineering technique with good and bad examples."""

    __tablename__ = "techniques"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    title: Mapped[str]
    description: Mapped[str]
    good_example: Mapped[str]
    bad_example: Mapped[str]
    common_mistakes: Mapped[list[str]] = mapped_column(
        JSONType, default=list, server_default=text("'[]'")
    )
    snippet: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class Run(Base):
    """One execution of a prompt against a model, with its output and measurements."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    prompt_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("prompt_versions.id", ondelete="SET NULL")
    )
    sections: Mapped[dict[str, Any]] = mapped_column(JSONType)
    variables: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType, default=list, server_default=text("'[]'")
    )
    model: Mapped[str]
    # Stored as an integer: temperature × 100.
    temperature: Mapped[int]
    max_tokens: Mapped[int | None]
    output: Mapped[str]
    # Milliseconds.
    latency: Mapped[int | None]
    token_usage: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    # Ours (0007_tenant_scoping): the tenant that owns the run.
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    # Ours (0013_runs). running → completed | truncated (the stream was cut; ``output`` holds
    # what arrived) | failed (``error`` says why) | cancelled (the client went away).
    status: Mapped[str] = mapped_column(default="completed", server_default="completed")
    error: Mapped[str | None]
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    provider: Mapped[str | None]
    finish_reason: Mapped[str | None]
    # A run of a live session's text: the session and its Yjs state vector at that moment.
    session_id: Mapped[str | None] = mapped_column(
        ForeignKey("collaboration_sessions.id", ondelete="SET NULL")
    )
    state_vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Answered from the semantic cache: the entry (no foreign key: entries expire) and the
    # similarity of the lookup (hit or miss).
    cache_hit: Mapped[bool] = mapped_column(default=False, server_default=false())
    cache_entry_id: Mapped[str | None]
    cache_similarity: Mapped[float | None] = mapped_column(Double)
    # Ours (0018_run_leases): the node answering a running run, and until when it vouches for
    # it (renewed while it runs); the sweep fails running runs whose lease has expired.
    node_id: Mapped[str | None]
    lease_expires_at: Mapped[datetime | None]

    prompt_version: Mapped[PromptVersion | None] = relationship(back_populates="runs")
    tenant: Mapped[Tenant | None] = relationship()
    ratings: Mapped[list[RunRating]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("idx_runs_created_at", created_at.desc()),
        Index("idx_runs_model", "model"),
        Index("idx_runs_prompt_version", "prompt_version_id"),
        Index("idx_runs_tenant", "tenant_id"),
        Index("idx_runs_tenant_created", "tenant_id", "created_at"),
        Index("idx_runs_session", "session_id"),
        Index("idx_runs_status_lease", "status", "lease_expires_at"),
        CheckConstraint(
            "status IN ('running', 'completed', 'truncated', 'failed', 'cancelled')",
            name="valid_status",
        ),
    )


class RunRating(Base):
    """A 1–5 rating with notes and tags on a run."""

    __tablename__ = "run_ratings"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    rating: Mapped[int | None]
    notes: Mapped[str | None]
    tags: Mapped[list[str] | None] = mapped_column(
        JSONType, default=list, server_default=text("'[]'")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    # Ours (0013_runs): who rated.
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    run: Mapped[Run] = relationship(back_populates="ratings")

    __table_args__ = (
        CheckConstraint("rating >= 1 AND rating <= 5", name="rating_range"),
        Index("idx_run_ratings_run", "run_id"),
    )
