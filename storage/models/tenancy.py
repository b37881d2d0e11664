"""Multi-tenancy: tenants, users, and login sessions (schema doc §5–6 and ``session``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, TIMESTAMP, ForeignKey, Index, String, func, text, true
from sqlalchemy.dialects.postgresql import TIMESTAMP as PG_TIMESTAMP
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, JSONType, new_uuid, utcnow


class Tenant(Base):
    """An organisation; API keys are stored hashed (by the server layer)."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(primary_key=True, default=new_uuid)
    name: Mapped[str]
    domain: Mapped[str | None] = mapped_column(unique=True)
    api_key: Mapped[str] = mapped_column(unique=True)
    config: Mapped[dict[str, Any] | None] = mapped_column(
        JSONType, default=dict, server_default=text("'{}'")
    )
    is_active: Mapped[bool | None] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    users: Mapped[list[User]] = relationship(back_populates="tenant")


class User(Base):
    """A person; belongs to at most one tenant."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(primary_key=True, default=new_uuid)
    email: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    avatar: Mapped[str | None]
    color: Mapped[str | None] = mapped_column(default="#3B82F6", server_default="#3B82F6")
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    tenant: Mapped[Tenant | None] = relationship(back_populates="users")

    __table_args__ = (
        Index("idx_users_tenant", "tenant_id"),
        Index("idx_users_email", "email"),
    )


class LoginSession(Base):
    """A login session row (``session`` table, the connect-pg-simple layout)."""

    __tablename__ = "session"

    sid: Mapped[str] = mapped_column(String, primary_key=True)
    # Plain JSON (not JSONB), as connect-pg-simple creates it.
    sess: Mapped[dict[str, Any]] = mapped_column(JSON)
    expire: Mapped[datetime] = mapped_column(
        TIMESTAMP().with_variant(PG_TIMESTAMP(precision=6), "postgresql")
    )

    __table_args__ = (Index("IDX_session_expire", "expire"),)
