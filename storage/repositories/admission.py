"""What a websocket join must know, read in one statement.

A join needs the login token's owner (user, tenant, whether the tenant is active), the
collaboration session its share token admits to, and the owner's membership in it. Read as one
joined statement, since joins come in storms (everyone reconnecting after a deploy) and each
statement costs a round trip to the database thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.base import utcnow
from storage.models import CollaborationSession, LoginSession, SessionMember, Tenant, User
from storage.repositories.tenancy import TokenOwner


@dataclass(frozen=True, slots=True)
class JoinTarget:
    """The session a share token admits to, and the joiner's membership in it."""

    session_id: str
    tenant_id: str | None
    is_active: bool
    member_role: str | None
    is_member: bool


async def read_admission(
    db: AsyncSession, token_hash: str, share_token: str, *, now: datetime | None = None
) -> tuple[TokenOwner | None, JoinTarget | None]:
    """The token's owner (None: unknown, expired or orphaned token) and the join target (None:
    unknown share token; also None when the owner is)."""
    user_id = LoginSession.sess["user_id"].as_string()
    row = (
        await db.execute(
            select(
                User.id,
                User.tenant_id,
                User.email,
                User.name,
                User.color,
                Tenant.is_active,
                CollaborationSession.id,
                CollaborationSession.tenant_id,
                CollaborationSession.is_active,
                SessionMember.id,
                SessionMember.role,
            )
            .select_from(LoginSession)
            .join(User, User.id == user_id)
            .outerjoin(Tenant, Tenant.id == User.tenant_id)
            .outerjoin(CollaborationSession, CollaborationSession.share_token == share_token)
            .outerjoin(
                SessionMember,
                and_(
                    SessionMember.session_id == CollaborationSession.id,
                    SessionMember.user_id == User.id,
                ),
            )
            .where(LoginSession.sid == token_hash, LoginSession.expire > (now or utcnow()))
        )
    ).first()
    if row is None:
        return None, None
    (uid, tenant_id, email, name, color, tenant_active, sid, s_tenant, active, mid, role) = row
    owner = TokenOwner(uid, tenant_id, email, name, color, tenant_active is not False)
    if sid is None:
        return owner, None
    return owner, JoinTarget(sid, s_tenant, bool(active), role, mid is not None)
