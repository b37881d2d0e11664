"""Two nodes' semantic-cache indexes stay in step with the table through the broker
(in-process bus and real Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from migrations.runner import upgrade
from server.cache import CacheOptions, CacheScope, HashingEmbedder, SemanticCacheService, admin
from server.cache.index import LoadedRow
from server.cache.sync import CHANNEL, Reset, encode_change
from server.hub.broker import Broker, Envelope, MemoryBroker, MemoryBus, RedisBroker
from server.llm.base import TokenUsage
from storage.engine import create_engine, create_session_factory
from tests.support.accounts import create_accounts
from tests.support.waiting import eventually

USAGE = TokenUsage(10, 10, 20)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def brokers(request: pytest.FixtureRequest) -> tuple[Broker, Broker]:
    if request.param == "memory":
        bus = MemoryBus()
        return MemoryBroker("node-a", bus), MemoryBroker("node-b", bus)
    redis_url: str = request.getfixturevalue("redis_url")
    prefix = f"cache-sync-{uuid.uuid4().hex[:8]}:"
    return (
        RedisBroker(redis_url, "node-a", channel_prefix=prefix),
        RedisBroker(redis_url, "node-b", channel_prefix=prefix),
    )


@pytest.fixture
async def nodes(
    tmp_path: Path, brokers: tuple[Broker, Broker]
) -> AsyncIterator[tuple[SemanticCacheService, SemanticCacheService, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}"
    upgrade(url, "head")
    (account,) = await create_accounts(url, ["Ada"])
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    options = CacheOptions(maintenance_interval_seconds=0)
    broker_a, broker_b = brokers
    async with (
        broker_a,
        broker_b,
        SemanticCacheService(sessions, broker_a, HashingEmbedder(), options) as node_a,
        SemanticCacheService(sessions, broker_b, HashingEmbedder(), options) as node_b,
    ):
        yield node_a, node_b, account.tenant_id
    await engine.dispose()


def scope_of(tenant_id: str) -> CacheScope:
    return CacheScope(tenant_id, "gpt-4o-mini", 0.0, None, "sections")


async def test_a_peer_serves_what_another_node_stored_and_forgets_what_it_deleted(
    nodes: tuple[SemanticCacheService, SemanticCacheService, str],
) -> None:
    node_a, node_b, tenant = nodes
    scope = scope_of(tenant)
    sessions = node_a._sessions
    async with sessions() as db:
        assert not (await node_b.lookup(db, scope, "where to eat in naples tonight")).hit
        await db.commit()
    scope_id = (tenant, scope.key, node_b.embedder.name)
    index_b = node_b.registry.loaded(scope_id)
    assert index_b is not None and len(index_b) == 0

    async with sessions() as db:
        entry = await node_a.store(
            db, scope, "where to eat pizza in naples tonight", "Da Michele", USAGE
        )
        assert entry is not None
        await db.commit()

    async def arrived() -> bool:
        return entry.id in index_b

    await eventually(arrived)
    async with sessions() as db:
        found = await node_b.lookup(db, scope, "where to eat pizza in naples tonight please")
        await db.commit()
    assert found.hit and not found.exact and found.entry is not None
    assert found.entry.response == "Da Michele"

    async with sessions() as db:
        await admin.delete_entry(node_a, db, tenant, entry.id)
        await db.commit()

    async def gone() -> bool:
        return entry.id not in index_b

    await eventually(gone)


async def test_missed_messages_make_a_peer_reload_from_the_table(
    nodes: tuple[SemanticCacheService, SemanticCacheService, str],
) -> None:
    _, node_b, tenant = nodes
    scope = scope_of(tenant)
    async with node_b._sessions() as db:
        await node_b.lookup(db, scope, "anything")
        await db.commit()
    assert len(node_b.registry) == 1
    kind, payload = encode_change(Reset("some-other-tenant"))
    node_b.sync._on_envelope(Envelope(CHANNEL, "node-a", 9, kind, payload, gap=True))
    assert len(node_b.registry) == 0
    # A malformed message is dropped, and the peer reloads rather than trusting its indexes.
    async with node_b._sessions() as db:
        await node_b.lookup(db, scope, "anything")
        await db.commit()
    node_b.sync._on_envelope(Envelope(CHANNEL, "node-a", 10, "add", b"garbage"))
    assert len(node_b.registry) == 0


async def no_rows() -> list[LoadedRow]:
    return []


async def test_a_full_publish_queue_resets_the_peers(tmp_path: Path) -> None:
    bus = MemoryBus()
    url = f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}"
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    options = CacheOptions(maintenance_interval_seconds=0, sync_queue_limit=1)
    try:
        async with (
            MemoryBroker("node-a", bus) as broker_a,
            MemoryBroker("node-b", bus) as broker_b,
            SemanticCacheService(sessions, broker_a, HashingEmbedder(), options) as node_a,
            SemanticCacheService(sessions, broker_b, HashingEmbedder(), options) as node_b,
        ):
            await node_b.registry.get(("t", "s", "e"), 3, no_rows)
            received = node_b.sync.received
            # Three changes into a queue of one: the overflow becomes one reset for everyone.
            node_a.sync.publish([Reset("x"), Reset("y"), Reset("z")])

            async def reset() -> bool:
                return node_b.sync.received > received and len(node_b.registry) == 0

            await eventually(reset)
    finally:
        await engine.dispose()
