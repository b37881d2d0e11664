"""Real-time collaboration: sessions, their members, and the edit log (schema doc §9–11)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, func, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, JSONType, new_uuid, utcnow

if TYPE_CHECKING:
    from storage.models.tenancy import Tenant, User

#: A session member's role; the one definition storage, REST and the hub share.
MemberRole = Literal["OWNER", "EDITOR", "VIEWER"]
#: The roles a session member may have, strongest first.
MEMBER_ROLES: tuple[MemberRole, ...] = ("OWNER", "EDITOR", "VIEWER")
#: A role may do whatever a role of lower rank may.
ROLE_RANK: dict[str, int] = {role: len(MEMBER_ROLES) - i for i, role in enumerate(MEMBER_ROLES)}


def role_at_least(role: str | None, minimum: MemberRole) -> bool:
    """Whether ``role`` (None or an unknown name: no role) ranks at least ``minimum``."""
    return role is not None and ROLE_RANK.get(role, 0) >= ROLE_RANK[minimum]


class CollaborationSession(Base):
    """A live co-editing session, joined through its share token."""

    __tablename__ = "collaboration_sessions"

    id: Mapped[str] = mapped_column(primary_key=True, default=new_uuid)
    name: Mapped[str]
    description: Mapped[str | None]
    content: Mapped[str | None] = mapped_column(default="", server_default="")
    is_active: Mapped[bool | None] = mapped_column(default=True, server_default=true())
    share_token: Mapped[str] = mapped_column(unique=True)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )
    # Ours (0007_tenant_scoping): the persisted Yjs document state (an update encoding the
    # whole document), stored next to the plain ``content``.
    crdt_state: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Ours (0011_prompt_labels): the prompt the session edits (publish makes its versions).
    prompt_id: Mapped[str | None] = mapped_column(ForeignKey("prompts.id", ondelete="SET NULL"))

    tenant: Mapped[Tenant | None] = relationship()
    owner: Mapped[User] = relationship()
    members: Mapped[list[SessionMember]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True
    )
    edits: Mapped[list[EditHistory]] = relationship(
        back_populates="session",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="EditHistory.id",
    )

    __table_args__ = (
        Index("idx_sessions_tenant", "tenant_id"),
        Index("idx_sessions_owner", "owner_id"),
        Index("idx_sessions_share_token", "share_token"),
        Index("idx_sessions_prompt", "prompt_id"),
        Index(
            "idx_sessions_active",
            "is_active",
            postgresql_where=is_active == true(),
            sqlite_where=is_active == true(),
        ),
    )


class SessionMember(Base):
    """A user's membership (and role) in a collaboration session."""

    __tablename__ = "session_members"

    id: Mapped[str] = mapped_column(primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    session_id: Mapped[str] = mapped_column(
        ForeignKey("collaboration_sessions.id", ondelete="CASCADE")
    )
    role: Mapped[str | None] = mapped_column(default="VIEWER", server_default="VIEWER")
    joined_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())

    session: Mapped[CollaborationSession] = relationship(back_populates="members")
    user: Mapped[User] = relationship()

    __table_args__ = (
        CheckConstraint(f"role IN ({', '.join(repr(r) for r in MEMBER_ROLES)})", name="valid_role"),
        Index("idx_session_members_unique", "user_id", "session_id", unique=True),
    )


class EditHistory(Base):
    """One applied edit operation (JSON) with the content before and after it."""

    __tablename__ = "edit_history"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("collaboration_sessions.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    operation: Mapped[dict[str, Any]] = mapped_column(JSONType)
    content_before: Mapped[str | None]
    content_after: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    # Addition (0008): the server node that applied and recorded the edit. Positions in a row
    # are relative to that node's copy of the text, so history is replayed per node.
    node_id: Mapped[str | None]
    # Addition (0017): the id a JSON client gave the op, and a digest of the op as it sent it,
    # so a resent op is recognised (and a reused id with another op refused) after a reload.
    client_op_id: Mapped[str | None]
    client_op_digest: Mapped[str | None]

    session: Mapped[CollaborationSession] = relationship(back_populates="edits")
    user: Mapped[User] = relationship()

    __table_args__ = (
        Index("idx_edit_history_session", "session_id"),
        Index("idx_edit_history_user", "user_id"),
        Index("idx_edit_history_created", created_at.desc()),
        Index("idx_edit_history_client_op", "session_id", "user_id", "client_op_id"),
    )


class DocumentUpdate(Base):
    """Addition (0009): a Yjs update not yet folded into ``collaboration_sessions.crdt_state``.

    Every change is appended here in the same transaction as its edit history (small rows),
    and a document's rows are periodically compacted into its ``crdt_state`` snapshot. A
    document's persisted state is always ``crdt_state`` plus its remaining rows.
    """

    __tablename__ = "document_updates"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("collaboration_sessions.id", ondelete="CASCADE")
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())

    __table_args__ = (Index("idx_document_updates_session", "session_id", "id"),)
