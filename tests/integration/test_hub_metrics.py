"""The hub's cluster counters (read by /metrics): gaps and resyncs survive their room's unload."""

from __future__ import annotations

import pytest

from server.hub.broker_envelope import Envelope
from server.hub.cluster import AWARENESS, session_channel
from server.hub.memory_broker import MemoryBus
from tests.support.hubs import hub_with_session
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_gaps_and_resyncs_are_counted_and_never_go_down(migrated_database_url: str) -> None:
    async with hub_with_session(
        migrated_database_url, name="metrics", text="hi", bus=MemoryBus(), linger_seconds=0.005
    ) as seeded:
        hub, session_id = seeded.hub, seeded.session_id
        room = await hub.acquire(session_id)
        resyncs_on_open = hub.cluster_resyncs
        assert hub.cluster_gaps == 0
        link = hub.links[session_id]
        # Another node's message after a gap (its payload garbage: counted all the same).
        channel = session_channel(session_id)
        link._on_envelope(Envelope(channel, "node-b", 7, AWARENESS, b"\xff", gap=True))
        link._on_envelope(Envelope(channel, "node-b", 8, AWARENESS, b"\xff"))
        assert hub.cluster_gaps == 1
        assert hub.cluster_resyncs == resyncs_on_open + 1
        hub.release(room)

        async def unloaded() -> bool:
            return session_id not in hub.rooms and session_id not in hub.links

        await eventually(unloaded, timeout=10.0)
        assert hub.cluster_gaps == 1
        assert hub.cluster_resyncs == resyncs_on_open + 1
