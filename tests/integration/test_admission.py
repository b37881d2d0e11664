"""What a join reads, on both dialects and through both readers (they must agree exactly)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import update

from server.security import hash_secret
from storage.base import utcnow
from storage.engine import create_engine, create_session_factory
from storage.models import CollaborationSession, LoginSession, Tenant
from storage.repositories.admission import (
    Admission,
    AdmissionReader,
    SqlAlchemyAdmissionReader,
    SqliteAdmissionReader,
)
from storage.repositories.collaboration import create_session, set_member_role
from storage.sqlite_thread import sqlite_file_of
from tests.support.accounts import Account, create_accounts

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class World:
    """Two tenants; ``owner`` and ``member`` belong to the session, ``stranger`` does not."""

    owner: Account
    member: Account
    stranger: Account
    outsider: Account  # another tenant
    readers: list[AdmissionReader]
    url: str


@pytest_asyncio.fixture(loop_scope="session")
async def world(migrated_database_url: str) -> AsyncIterator[World]:
    url = migrated_database_url
    owner, member, stranger = await create_accounts(url, ["Owner", "Member", "Stranger"])
    (outsider,) = await create_accounts(url, ["Outsider"])
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    async with sessions() as db, db.begin():
        row = await create_session(
            db, tenant_id=owner.tenant_id, owner_id=owner.user_id, name="s", share_token="open"
        )
        await set_member_role(db, session_id=row.id, user_id=member.user_id, role="VIEWER")
        closed = await create_session(
            db, tenant_id=owner.tenant_id, owner_id=owner.user_id, name="c", share_token="closed"
        )
        closed.is_active = False
    readers: list[AdmissionReader] = [SqlAlchemyAdmissionReader(sessions)]
    path = sqlite_file_of(url)
    try:
        if path is None:
            yield World(owner, member, stranger, outsider, readers, url)
        else:
            async with SqliteAdmissionReader(path) as sqlite_reader:
                readers.append(sqlite_reader)
                yield World(owner, member, stranger, outsider, readers, url)
    finally:
        await engine.dispose()


async def read_all(world: World, token: str, share_token: str) -> Admission:
    """Read through every reader; all must give the same answer, which is returned."""
    answers = [await r.read(hash_secret(token), share_token) for r in world.readers]
    assert all(answer == answers[0] for answer in answers[1:]), answers
    return answers[0]


async def test_members_non_members_and_unknown_share_tokens(world: World) -> None:
    owner, target = await read_all(world, world.owner.token, "open")
    assert owner is not None and owner.user_id == world.owner.user_id and owner.tenant_active
    assert owner.name == "Owner" and owner.tenant_id == world.owner.tenant_id
    # Every reader gives the login's expiry as a datetime (raw sqlite3 hands it as text).
    assert isinstance(owner.expires_at, datetime) and owner.expires_at > utcnow()
    assert target is not None and target.is_active and target.is_member
    assert target.member_role == "OWNER" and target.tenant_id == world.owner.tenant_id

    _, as_viewer = await read_all(world, world.member.token, "open")
    assert as_viewer is not None and as_viewer.member_role == "VIEWER"

    _, not_member = await read_all(world, world.stranger.token, "open")
    assert not_member is not None and not not_member.is_member and not_member.member_role is None

    someone, unknown = await read_all(world, world.stranger.token, "no-such-token")
    assert someone is not None and unknown is None

    _, closed = await read_all(world, world.owner.token, "closed")
    assert closed is not None and not closed.is_active

    _, foreign = await read_all(world, world.outsider.token, "open")
    assert foreign is not None and foreign.tenant_id != world.outsider.tenant_id


async def test_unknown_expired_and_deactivated_tokens(world: World) -> None:
    assert await read_all(world, "not-a-token", "open") == (None, None)
    engine = create_engine(world.url)
    try:
        async with create_session_factory(engine)() as db, db.begin():
            await db.execute(
                update(Tenant).where(Tenant.id == world.outsider.tenant_id).values(is_active=False)
            )
        owner, _ = await read_all(world, world.outsider.token, "open")
        assert owner is not None and not owner.tenant_active
        async with create_session_factory(engine)() as db, db.begin():
            await db.execute(
                update(LoginSession)
                .where(LoginSession.sid == hash_secret(world.stranger.token))
                .values(expire=utcnow() - timedelta(seconds=1))
            )
            await db.execute(
                update(CollaborationSession)
                .where(CollaborationSession.share_token == "open")
                .values(is_active=False)
            )
        assert await read_all(world, world.stranger.token, "open") == (None, None)
        _, target = await read_all(world, world.owner.token, "open")
        assert target is not None and not target.is_active
    finally:
        await engine.dispose()
