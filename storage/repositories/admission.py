"""What a websocket join must know, read in one statement.

A join needs the login token's owner (user, tenant, whether the tenant is active), the
collaboration session its share token admits to, and the owner's membership in it. Read as one
joined statement, since joins come in storms (everyone reconnecting after a deploy): through an
:class:`AdmissionReader`, which on a SQLite file runs the statement (rendered once by
SQLAlchemy) on its own connection in one thread call (:class:`SqliteAdmissionReader`), and
otherwise through SQLAlchemy (:func:`read_admission`). Both return the same values; the tests
compare them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import BindParameter, Select, and_, bindparam
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.base import utcnow
from storage.models import CollaborationSession, SessionMember, User
from storage.repositories.tenancy import (
    OWNER_COLUMNS,
    TokenOwner,
    token_owner_of,
    token_owner_select,
)
from storage.sqlite_thread import PreparedStatement, SqliteThread, sqlite_file_of

Admission = tuple[TokenOwner | None, "JoinTarget | None"]


@dataclass(frozen=True, slots=True)
class JoinTarget:
    """The session a share token admits to, and the joiner's membership in it."""

    session_id: str
    tenant_id: str | None
    is_active: bool
    member_role: str | None
    is_member: bool


def admission_select(
    token_hash: str | BindParameter[str],
    share_token: str | BindParameter[str],
    now: datetime | BindParameter[datetime],
) -> Select[*tuple[Any, ...]]:
    """The one statement of a join: the token's owner, then the session and membership."""
    return (
        token_owner_select(token_hash, now)
        .add_columns(
            CollaborationSession.id,
            CollaborationSession.tenant_id,
            CollaborationSession.is_active,
            SessionMember.id,
            SessionMember.role,
        )
        .outerjoin(CollaborationSession, CollaborationSession.share_token == share_token)
        .outerjoin(
            SessionMember,
            and_(
                SessionMember.session_id == CollaborationSession.id,
                SessionMember.user_id == User.id,
            ),
        )
    )


async def read_admission(
    db: AsyncSession, token_hash: str, share_token: str, *, now: datetime | None = None
) -> Admission:
    """The token's owner (None: unknown, expired or orphaned token) and the join target (None:
    unknown share token; also None when the owner is)."""
    statement = admission_select(token_hash, share_token, now or utcnow())
    return _admission((await db.execute(statement)).first())


def _admission(row: Any) -> Admission:
    if row is None:
        return None, None
    owner = token_owner_of(row)
    sid, s_tenant, active, mid, role = row[OWNER_COLUMNS:]
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


class SqliteAdmissionReader:
    """The admission statement on a read-only connection of its own: one thread call a join."""

    def __init__(self, path: str) -> None:
        self._thread = SqliteThread(path, name="admission-sqlite", read_only=True)
        self._statement = PreparedStatement(
            admission_select(bindparam("token_hash"), bindparam("share_token"), bindparam("now"))
        )

    async def __aenter__(self) -> SqliteAdmissionReader:
        await self._thread.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._thread.__aexit__(*exc_info)

    async def read(self, token_hash: str, share_token: str) -> Admission:
        """See :class:`AdmissionReader`."""
        parameters = self._statement.parameters(
            token_hash=token_hash, share_token=share_token, now=utcnow()
        )
        return _admission(await self._thread.call(_fetch_one, self._statement.sql, parameters))


def _fetch_one(conn: sqlite3.Connection, sql: str, parameters: list[Any]) -> Any:
    return conn.execute(sql, parameters).fetchone()


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
