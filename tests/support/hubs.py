"""One in-process hub on a real database, with a seeded collaboration session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from crdt import PromptDocument
from crdt.merge import fold_updates, merge_updates
from server.hub.memory_broker import MemoryBroker, MemoryBus
from server.hub.presence import PresenceTracker
from server.hub.registry import Hub
from storage.engine import create_engine, create_session_factory
from storage.history_writer import HistoryWriter
from storage.repositories.collaboration import create_session
from tests.support.accounts import Account, create_accounts


@dataclass(frozen=True)
class HubOnSession:
    """A running hub, the session seeded for it and the session's owner."""

    hub: Hub
    session_id: str
    owner: Account


@asynccontextmanager
async def hub_with_session(
    database_url: str,
    *,
    name: str,
    text: str = "hello",
    bus: MemoryBus | None = None,
    linger_seconds: float = 0.001,
    **hub_options: Any,
) -> AsyncIterator[HubOnSession]:
    """A hub (memory broker, history writer, presence) over ``database_url`` holding one new
    session of a new owner whose text is ``text``; ``hub_options`` go to :class:`Hub`."""
    (owner,) = await create_accounts(database_url, ["Owner"])
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    async with sessions() as db, db.begin():
        row = await create_session(
            db,
            tenant_id=owner.tenant_id,
            owner_id=owner.user_id,
            name=name,
            share_token=f"{name}-token",
            content=text,
            crdt_state=PromptDocument.from_text(text).full_state(),
        )
        session_id = row.id
    try:
        async with (
            MemoryBroker("node-a", bus) as broker,
            HistoryWriter(
                sessions, merge=merge_updates, fold=fold_updates, linger_seconds=linger_seconds
            ) as writer,
            PresenceTracker(sessions, interval=60) as presence,
            Hub(
                sessions, writer, presence, broker, unload_grace_seconds=0.05, **hub_options
            ) as hub,
        ):
            yield HubOnSession(hub, session_id, owner)
    finally:
        await engine.dispose()
