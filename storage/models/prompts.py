"""Versioned prompts with ownership (schema doc §7–8), their labels and the labels' history.

Additions over the schema doc (migration ``0011_prompt_labels``):

* ``prompt_versions``: ``model_config``, ``message`` (why the version was saved), ``created_by``,
  and where the version came from — a live session (``source_session_id`` plus the
  ``edit_history`` id the text was taken at) or a marketplace listing it was forked from.
* ``prompt_labels``: named, movable pointers to a version (``staging``, ``canary``…). The two
  built-in labels are not rows: ``latest`` is the highest version number and ``production`` is
  ``prompts.active_version_id``.
* ``prompt_label_events``: every move of every label (built-in ones included): who, when, from
  which version number to which (``None`` = not set).
"""

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
    """One immutable version of a prompt: plain content and/or structured sections."""

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
    # Ours (0011_prompt_labels).
    model_config: Mapped[dict[str, Any] | None] = mapped_column(
        JSONType, default=dict, server_default=text("'{}'")
    )
    message: Mapped[str | None]
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    source_session_id: Mapped[str | None] = mapped_column(
        ForeignKey("collaboration_sessions.id", ondelete="SET NULL")
    )
    # The edit_history id the published text was taken at. Deliberately no foreign key: a
    # session's (many) history rows are deleted with it, and a key would make each of those
    # deletes look up prompt_versions; source_session_id says whether the session still exists.
    source_edit_id: Mapped[int | None]
    source_listing_id: Mapped[str | None] = mapped_column(
        ForeignKey("marketplace_prompts.id", ondelete="SET NULL")
    )

    prompt: Mapped[Prompt | None] = relationship(back_populates="versions")
    runs: Mapped[list[Run]] = relationship(back_populates="prompt_version", passive_deletes=True)

    __table_args__ = (
        Index("idx_prompt_versions_prompt", "prompt_id"),
        Index("idx_prompt_versions_unique", "prompt_id", "version", unique=True),
        Index("idx_prompt_versions_source_session", "source_session_id"),
        Index("idx_prompt_versions_source_listing", "source_listing_id"),
    )


class PromptLabel(Base):
    """Addition (0011): a named pointer from a prompt to one of its versions."""

    __tablename__ = "prompt_labels"

    prompt_id: Mapped[str] = mapped_column(
        ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("prompt_versions.id", ondelete="CASCADE"))
    updated_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    __table_args__ = (Index("idx_prompt_labels_version", "version_id"),)


class PromptLabelEvent(Base):
    """Addition (0011): one move of a label, from one version number to another."""

    __tablename__ = "prompt_label_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    prompt_id: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    label: Mapped[str]
    # Version numbers (not ids): versions are immutable and numbered per prompt. None = unset.
    from_version: Mapped[int | None]
    to_version: Mapped[int | None]
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())

    __table_args__ = (Index("idx_prompt_label_events_prompt", "prompt_id", "id"),)
