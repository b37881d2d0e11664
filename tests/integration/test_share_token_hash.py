"""Share tokens are stored hashed: the 0010 migration, the REST API and a real websocket join."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from migrations import runner
from storage.engine import create_engine


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the (empty) test database, disposed afterwards."""
    engine = create_engine(database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


async def test_upgrade_hashes_existing_tokens_in_place(engine: AsyncEngine) -> None:
    await runner.upgrade_async(engine, "0009_document_updates")
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO tenants (id, name, api_key) VALUES ('t', 'T', 'k')"))
        await conn.execute(
            text("INSERT INTO users (id, email, name, tenant_id) VALUES ('u', 'u@x', 'U', 't')")
        )
        for sid, token in (("s1", "link-one"), ("s2", "link-two")):
            await conn.execute(
                text(
                    "INSERT INTO collaboration_sessions (id, name, share_token, tenant_id, "
                    "owner_id) VALUES (:id, 'n', :token, 't', 'u')"
                ),
                {"id": sid, "token": token},
            )
    await runner.upgrade_async(engine, "0010_share_token_hash")
    async with engine.connect() as conn:
        rows = dict(
            (await conn.execute(text("SELECT id, share_token FROM collaboration_sessions"))).all()
        )
    assert rows == {
        "s1": hashlib.sha256(b"link-one").hexdigest(),
        "s2": hashlib.sha256(b"link-two").hexdigest(),
    }
