"""Collaboration sessions and their members: the queries behind the REST API and the hub.

Every lookup a client can trigger is scoped to a tenant; an id from another tenant behaves
exactly like an unknown id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.base import utcnow
from storage.models import CollaborationSession, DocumentUpdate, SessionMember, User
from storage.models.collaboration import MEMBER_ROLES


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A session row with its member count (the schema doc's active-sessions query)."""

    session: CollaborationSession
    member_count: int


@dataclass(frozen=True, slots=True)
class MemberView:
    """A member joined with the user's display fields."""

    member: SessionMember
    user: User


async def create_session(
    db: AsyncSession,
    *,
    tenant_id: str,
    owner_id: str,
    name: str,
    share_token: str,
    description: str | None = None,
    content: str = "",
    crdt_state: bytes | None = None,
) -> CollaborationSession:
    """Insert a session and make its creator the OWNER member."""
    session = CollaborationSession(
        tenant_id=tenant_id,
        owner_id=owner_id,
        name=name,
        description=description,
        content=content,
        share_token=share_token,
        crdt_state=crdt_state,
    )
    db.add(session)
    await db.flush()
    db.add(SessionMember(session_id=session.id, user_id=owner_id, role="OWNER"))
    await db.flush()
    return session


async def get_session(
    db: AsyncSession, session_id: str, *, tenant_id: str
) -> CollaborationSession | None:
    """The tenant's session with this id (active or not), or None."""
    return await db.scalar(
        select(CollaborationSession).where(
            CollaborationSession.id == session_id, CollaborationSession.tenant_id == tenant_id
        )
    )


async def get_session_by_id(db: AsyncSession, session_id: str) -> CollaborationSession | None:
    """A session by id regardless of tenant (for the hub, which already checked access)."""
    return await db.get(CollaborationSession, session_id)


async def list_active_sessions(
    db: AsyncSession, *, tenant_id: str, limit: int, offset: int
) -> tuple[list[SessionSummary], int]:
    """The tenant's active sessions, most recently updated first, with member counts and total."""
    member_count = (
        select(func.count(SessionMember.id))
        .where(SessionMember.session_id == CollaborationSession.id)
        .correlate(CollaborationSession)
        .scalar_subquery()
    )
    scope = (CollaborationSession.tenant_id == tenant_id, CollaborationSession.is_active.is_(True))
    rows = await db.execute(
        select(CollaborationSession, member_count)
        .where(*scope)
        .order_by(CollaborationSession.updated_at.desc(), CollaborationSession.id)
        .limit(limit)
        .offset(offset)
    )
    total = await db.scalar(select(func.count(CollaborationSession.id)).where(*scope))
    return [SessionSummary(s, int(n)) for s, n in rows.all()], int(total or 0)


async def count_members(db: AsyncSession, session_id: str) -> int:
    """How many members a session has."""
    total = await db.scalar(
        select(func.count(SessionMember.id)).where(SessionMember.session_id == session_id)
    )
    return int(total or 0)


async def list_members(db: AsyncSession, session_id: str) -> list[MemberView]:
    """A session's members with their users, in join order."""
    rows = await db.execute(
        select(SessionMember, User)
        .join(User, User.id == SessionMember.user_id)
        .where(SessionMember.session_id == session_id)
        .order_by(SessionMember.joined_at, SessionMember.id)
    )
    return [MemberView(m, u) for m, u in rows.all()]


async def member_roster(db: AsyncSession, session_id: str) -> list[dict[str, str | None]]:
    """A session's members as plain rows (user_id, name, color, role), without ORM objects.

    Called on every websocket join, so it reads only the four columns it needs.
    """
    rows = await db.execute(
        select(SessionMember.user_id, User.name, User.color, SessionMember.role)
        .join(User, User.id == SessionMember.user_id)
        .where(SessionMember.session_id == session_id)
        .order_by(SessionMember.joined_at, SessionMember.id)
    )
    return [
        {"user_id": user_id, "name": name, "color": color, "role": role}
        for user_id, name, color, role in rows.all()
    ]


async def get_member(db: AsyncSession, session_id: str, user_id: str) -> SessionMember | None:
    """The membership of one user in one session, or None."""
    return await db.scalar(
        select(SessionMember).where(
            SessionMember.session_id == session_id, SessionMember.user_id == user_id
        )
    )


async def ensure_member(
    db: AsyncSession, *, session_id: str, user_id: str, default_role: str = "VIEWER"
) -> SessionMember:
    """The user's membership, created with ``default_role`` if absent.

    Safe under concurrent joins of the same user: the unique (user_id, session_id) index decides,
    and the loser reads the winner's row. The caller's transaction is committed by this call.
    """
    existing = await get_member(db, session_id, user_id)
    if existing is not None:
        return existing
    member = SessionMember(session_id=session_id, user_id=user_id, role=default_role)
    db.add(member)
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        existing = await get_member(db, session_id, user_id)
        if existing is None:
            raise
        return existing
    return member


async def set_member_role(
    db: AsyncSession, *, session_id: str, user_id: str, role: str
) -> SessionMember | None:
    """Change a member's role (creating the membership if the user is not one yet)."""
    if role not in MEMBER_ROLES:
        raise ValueError(f"role must be one of {', '.join(MEMBER_ROLES)}")
    member = await get_member(db, session_id, user_id)
    if member is None:
        member = SessionMember(session_id=session_id, user_id=user_id, role=role)
        db.add(member)
    else:
        member.role = role
    await db.flush()
    return member


async def remove_member(db: AsyncSession, *, session_id: str, user_id: str) -> bool:
    """Delete a membership. True if it existed."""
    member = await get_member(db, session_id, user_id)
    if member is None:
        return False
    await db.delete(member)
    await db.flush()
    return True


async def touch_members(
    db: AsyncSession, session_id: str, user_ids: Sequence[str], *, at: datetime | None = None
) -> None:
    """Record that these members were present (``last_seen_at``)."""
    if not user_ids:
        return
    await db.execute(
        update(SessionMember)
        .where(SessionMember.session_id == session_id, SessionMember.user_id.in_(list(user_ids)))
        .values(last_seen_at=at or utcnow())
    )


async def save_document(
    db: AsyncSession, session_id: str, *, crdt_state: bytes, content: str
) -> None:
    """Persist a document snapshot: the Yjs state and its plain text, together."""
    await db.execute(
        update(CollaborationSession)
        .where(CollaborationSession.id == session_id)
        .values(crdt_state=crdt_state, content=content, updated_at=utcnow())
    )


async def load_document(
    db: AsyncSession, session_id: str
) -> tuple[bytes | None, list[bytes], str] | None:
    """A document's persisted parts: its snapshot, the updates logged since, its snapshot text.

    None if the session does not exist. The current document is the snapshot with the updates
    applied in order.

    The log is read before the snapshot: the two reads may see different commits (SQLite runs
    each SELECT on its own; PostgreSQL's READ COMMITTED gives each statement a new snapshot),
    and a fold committed in between then only moves rows already read into the snapshot read
    after them (applying an update twice is harmless). Read the other way round, such a fold
    would lose the rows it deleted.
    """
    updates = list(
        await db.scalars(
            select(DocumentUpdate.data)
            .where(DocumentUpdate.session_id == session_id)
            .order_by(DocumentUpdate.id)
        )
    )
    row = (
        await db.execute(
            select(CollaborationSession.crdt_state, CollaborationSession.content).where(
                CollaborationSession.id == session_id
            )
        )
    ).first()
    if row is None:
        return None
    return row[0], updates, row[1] or ""
