"""What a websocket join must know, read in one statement.

A join needs the login token's owner (user, tenant, whether the tenant is active), the
collaboration session its share token admits to, and the owner's membership in it. Read as one
joined statement, since joins come in storms (everyone reconnecting after a deploy): through an
:class:`AdmissionReader`, which on a SQLite file runs the statement on its own connection in
one thread call (:class:`SqliteAdmissionReader`), and otherwise through SQLAlchemy
(:func:`read_admission`). Both return the same values; the tests compare them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table, and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.base import utcnow
from storage.models import CollaborationSession, LoginSession, SessionMember, Tenant, User
from storage.repositories.tenancy import TokenOwner
from storage.sqlite_thread import SqliteThread, bind_processors, encode_row, sqlite_file_of

Admission = tuple[TokenOwner | None, "JoinTarget | None"]


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
    return _admission(row)


def _admission(row: Any) -> Admission:
    if row is None:
        return None, None
    (uid, tenant_id, email, name, color, tenant_active, sid, s_tenant, active, mid, role) = row
    # A tenant's is_active is nullable (NULL counts as active); SQLite hands booleans back as 0/1.
    owner = TokenOwner(uid, tenant_id, email, name, color, tenant_active in (None, True, 1))
    if sid is None:
        return owner, None
    return owner, JoinTarget(sid, s_tenant, bool(active), role, mid is not None)


class AdmissionReader(Protocol):
    """Reads what a join must know (see the module docstring)."""

    async def read(self, token_hash: str, share_token: str) -> Admission:
        """The token's owner and the join target, as :func:`read_admission` gives them."""


class SqlAlchemyAdmissionReader:
    """:func:`read_admission` in a session of its own."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def read(self, token_hash: str, share_token: str) -> Admission:
        """See :class:`AdmissionReader`."""
        async with self._sessions() as db:
            return await read_admission(db, token_hash, share_token)


# The statement of read_admission as SQLAlchemy renders it for SQLite, the JSON path inlined.
_SQLITE_ADMISSION = """
SELECT users.id, users.tenant_id, users.email, users.name, users.color, tenants.is_active,
       collaboration_sessions.id, collaboration_sessions.tenant_id,
       collaboration_sessions.is_active, session_members.id, session_members.role
FROM session
JOIN users ON users.id = CAST(JSON_EXTRACT(session.sess, '$."user_id"') AS VARCHAR)
LEFT OUTER JOIN tenants ON tenants.id = users.tenant_id
LEFT OUTER JOIN collaboration_sessions ON collaboration_sessions.share_token = ?
LEFT OUTER JOIN session_members ON session_members.session_id = collaboration_sessions.id
    AND session_members.user_id = users.id
WHERE session.sid = ? AND session.expire > ?
"""


class SqliteAdmissionReader:
    """The admission statement on a read-only connection of its own: one thread call a join."""

    def __init__(self, path: str) -> None:
        self._thread = SqliteThread(path, name="admission-sqlite", read_only=True)
        (self._encode_expire,) = bind_processors(cast(Table, LoginSession.__table__), ["expire"])

    async def __aenter__(self) -> SqliteAdmissionReader:
        await self._thread.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._thread.__aexit__(*exc_info)

    async def read(self, token_hash: str, share_token: str) -> Admission:
        """See :class:`AdmissionReader`."""
        (now,) = encode_row([utcnow()], [self._encode_expire])
        row = await self._thread.call(_fetch_admission, (share_token, token_hash, now))
        return _admission(row)


def _fetch_admission(conn: sqlite3.Connection, params: tuple[str, str, str]) -> Any:
    return conn.execute(_SQLITE_ADMISSION, params).fetchone()


@asynccontextmanager
async def admission_reader(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[AdmissionReader]:
    """The fastest reader for this database: the SQLite one on a file, else SQLAlchemy's."""
    path = sqlite_file_of(database_url)
    if path is None:
        yield SqlAlchemyAdmissionReader(sessions)
        return
    async with SqliteAdmissionReader(path) as reader:
        yield reader
