"""Core tables: prompt templates, techniques, runs and their ratings (schema doc §1–4)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, func, text
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

    __table_args__ = (
        Index("idx_templates_category", "category"),
        Index("idx_templates_created_at", created_at.desc()),
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

    run: Mapped[Run] = relationship(back_populates="ratings")

    __table_args__ = (CheckConstraint("rating >= 1 AND rating <= 5", name="rating_range"),)
