"""The prompt marketplace (schema doc §16)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, false, func, text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, JSONType, new_uuid, postgresql_only, utcnow

if TYPE_CHECKING:
    from storage.models.tenancy import User

#: Moderation states of a marketplace submission.
MARKETPLACE_STATUSES = ("pending", "approved", "rejected")


class MarketplacePrompt(Base):
    """A prompt shared on the marketplace, moderated before it is listed."""

    __tablename__ = "marketplace_prompts"

    id: Mapped[str] = mapped_column(primary_key=True, default=new_uuid)
    author_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str]
    description: Mapped[str]
    content: Mapped[str]
    category: Mapped[str]
    tags: Mapped[list[str] | None] = mapped_column(
        JSONType, default=list, server_default=text("'[]'")
    )
    is_featured: Mapped[bool | None] = mapped_column(default=False, server_default=false())
    status: Mapped[str | None] = mapped_column(default="pending", server_default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    # Ours (0012_catalog_tenancy): the author's tenant (their submissions, moderation and
    # deletion stay within it), the version the content was copied from, why a moderator
    # rejected it, when it was moderated, and how many times it was forked. No foreign key on
    # source_version_id: prompt_versions.source_listing_id already refers to this table, and the
    # listing keeps its own copy of the content whatever happens to the version.
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source_version_id: Mapped[str | None]
    rejection_reason: Mapped[str | None]
    moderated_at: Mapped[datetime | None]
    fork_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))

    author: Mapped[User | None] = relationship()

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="valid_status"),
        Index("idx_marketplace_author", "author_id"),
        Index("idx_marketplace_tenant", "tenant_id"),
        Index("idx_marketplace_category", "category"),
        Index("idx_marketplace_status", "status"),
        Index(
            "idx_marketplace_featured",
            "is_featured",
            postgresql_where=is_featured == true(),
            sqlite_where=is_featured == true(),
        ),
        postgresql_only(Index("idx_marketplace_tags", "tags", postgresql_using="gin")),
    )
