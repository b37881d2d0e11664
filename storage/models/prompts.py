"""Versioned prompts with ownership (schema doc §7–8)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, JSONType, new_uuid, utcnow

if TYPE_CHECKING:
    from storage.models.core import Run
    from storage.models.tenancy import Tenant, User


class Prompt(Base):
    """A named prompt; its content lives in :class:`PromptVersion` rows."""

    __tablename__ = "prompts"

    id: Mapped[str] = mapped_column(primary_key=True, default=new_uuid)
    name: Mapped[str]
    description: Mapped[str | None]
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    # The active prompt_versions.id; deliberately no foreign key (as in the schema doc).
    active_version_id: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    tenant: Mapped[Tenant | None] = relationship()
    owner: Mapped[User | None] = relationship()
    versions: Mapped[list[PromptVersion]] = relationship(
        back_populates="prompt",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="PromptVersion.version",
    )

    __table_args__ = (
        Index("idx_prompts_tenant", "tenant_id"),
        Index("idx_prompts_owner", "owner_id"),
    )


class PromptVersion(Base):
    """One version of a prompt: plain content and/or structured sections."""

    __tablename__ = "prompt_versions"

    id: Mapped[str] = mapped_column(primary_key=True, default=new_uuid)
    prompt_id: Mapped[str | None] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    content: Mapped[str | None]
    sections: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    variables: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSONType, default=list, server_default=text("'[]'")
    )
    performance_metrics: Mapped[dict[str, Any] | None] = mapped_column(
        JSONType, default=dict, server_default=text("'{}'")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())

    prompt: Mapped[Prompt | None] = relationship(back_populates="versions")
    runs: Mapped[list[Run]] = relationship(back_populates="prompt_version", passive_deletes=True)

    __table_args__ = (
        Index("idx_prompt_versions_prompt", "prompt_id"),
        Index("idx_prompt_versions_unique", "prompt_id", "version", unique=True),
    )
