"""The hub's cluster counters (read by /metrics): gaps and resyncs survive their room's unload."""

from __future__ import annotations

import pytest

from crdt import PromptDocument
from crdt.merge import fold_updates, merge_updates
from server.hub.broker_envelope import Envelope
from server.hub.cluster import AWARENESS, session_channel
from server.hub.memory_broker import MemoryBroker, MemoryBus
from server.hub.presence import PresenceTracker
from server.hub.registry import Hub
from storage.engine import create_engine, create_session_factory
from storage.history_writer import HistoryWriter
from storage.repositories.collaboration import create_session
from tests.support.accounts import create_accounts
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_gaps_and_resyncs_are_counted_and_never_go_down(migrated_database_url: str) -> None:
    (owner,) = await create_accounts(migrated_database_url, ["Owner"])
    engine = create_engine(migrated_database_url)
    sessions = create_session_factory(engine)
    async with sessions() as db, db.begin():
        row = await create_session(
            db,
            tenant_id=owner.tenant_id,
            owner_id=owner.user_id,
            name="metrics",
            share_token="metrics-token",
            content="hi",
            crdt_state=PromptDocument.from_text("hi").full_state(),
        )
    try:
        async with (
            MemoryBroker("node-a", MemoryBus()) as broker,
            HistoryWriter(sessions, merge=merge_updates, fold=fold_updates) as writer,
            PresenceTracker(sessions, interval=60) as presence,
            Hub(sessions, writer, presence, broker, unload_grace_seconds=0.05) as hub,
        ):
            room = await hub.acquire(row.id)
            resyncs_on_open = hub.cluster_resyncs
            assert hub.cluster_gaps == 0
            link = hub.links[row.id]
            # Another node's message after a gap (its payload garbage: counted all the same).
            channel = session_channel(row.id)
            link._on_envelope(Envelope(channel, "node-b", 7, AWARENESS, b"\xff", gap=True))
            link._on_envelope(Envelope(channel, "node-b", 8, AWARENESS, b"\xff"))
            assert hub.cluster_gaps == 1
            assert hub.cluster_resyncs == resyncs_on_open + 1
            hub.release(room)

            async def unloaded() -> bool:
                return row.id not in hub.rooms and row.id not in hub.links

            await eventually(unloaded, timeout=10.0)
            assert hub.cluster_gaps == 1
            assert hub.cluster_resyncs == resyncs_on_open + 1
    finally:
        await engine.dispose()
