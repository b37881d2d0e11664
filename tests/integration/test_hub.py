"""The hub in-process against a real database: single-flight loads, unloading frees memory."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from crdt import EditOp, PromptDocument
from server.hub.registry import Hub, SessionNotFoundError
from server.hub.room import StaleRevisionError
from storage.repositories.collaboration import get_session_by_id
from tests.support.hubs import hub_with_session
from tests.support.transports import recording_json_connection
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def hub_and_session(migrated_database_url: str) -> AsyncIterator[tuple[Hub, str, str]]:
    async with hub_with_session(migrated_database_url, name="hub") as setup:
        yield setup.hub, setup.session_id, setup.owner.user_id


async def test_concurrent_acquires_share_one_load(hub_and_session: tuple[Hub, str, str]) -> None:
    hub, session_id, _ = hub_and_session
    rooms = await asyncio.gather(*(hub.acquire(session_id) for _ in range(30)))
    assert len({id(room) for room in rooms}) == 1
    assert rooms[0].text == "hello"
    for room in rooms:
        hub.release(room)


async def test_unknown_session_is_refused(hub_and_session: tuple[Hub, str, str]) -> None:
    hub, _, _ = hub_and_session
    with pytest.raises(SessionNotFoundError):
        await hub.acquire("no-such-session")
    # A failed load leaves nothing behind: the next attempt tries again.
    with pytest.raises(SessionNotFoundError):
        await hub.acquire("no-such-session")


async def test_idle_room_is_persisted_unloaded_and_freed(
    hub_and_session: tuple[Hub, str, str],
) -> None:
    hub, session_id, owner_id = hub_and_session
    room = await hub.acquire(session_id)
    change = room.document.apply_op(EditOp("insert", 5, 0, " world"))
    _rev, durable = room.commit(change, user_id=owner_id, author=None)
    await durable
    document_ref = weakref.ref(room.document)
    room_ref = weakref.ref(room)
    hub.release(room)
    del room, change
    await eventually(lambda: _unloaded(hub, session_id), timeout=5, interval=0.01)
    gc.collect()
    assert room_ref() is None and document_ref() is None
    async with hub._sessions() as db:
        row = await get_session_by_id(db, session_id)
    assert row is not None and row.content == "hello world"
    assert PromptDocument.from_state(row.crdt_state or b"").text == "hello world"
    # Loading again starts from the persisted CRDT state.
    again = await hub.acquire(session_id)
    assert again.text == "hello world"
    hub.release(again)


async def _unloaded(hub: Hub, session_id: str) -> bool:
    return session_id not in hub.rooms and not hub._unloading


async def test_a_join_during_the_grace_period_keeps_the_room(
    hub_and_session: tuple[Hub, str, str],
) -> None:
    hub, session_id, _ = hub_and_session
    room = await hub.acquire(session_id)
    hub.release(room)
    again = await hub.acquire(session_id)  # well within the 50 ms grace period
    assert again is room
    hub.release(again)


async def test_ops_older_than_the_log_are_stale(
    hub_and_session: tuple[Hub, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, session_id, owner_id = hub_and_session
    room = await hub.acquire(session_id)
    listener = recording_json_connection("listener", "VIEWER")
    room.connections.add(listener)  # the op log is kept while a JSON client is in the room
    try:
        from collections import deque

        monkeypatch.setattr(room, "_log", deque(maxlen=3))
        futures = []
        for i in range(5):
            change = room.document.apply_op(EditOp("insert", 0, 0, str(i)))
            futures.append(room.commit(change, user_id=owner_id, author=None)[1])
        await asyncio.gather(*futures)
        assert [op.content for op in room.ops_since(room.rev - 2)] == ["3", "4"]
        with pytest.raises(StaleRevisionError):
            room.ops_since(room.rev - 4)
        with pytest.raises(ValueError):
            room.ops_since(room.rev + 1)
    finally:
        room.connections.discard(listener)
        hub.release(room)


async def test_without_json_clients_no_op_log_is_kept(
    hub_and_session: tuple[Hub, str, str],
) -> None:
    """Only JSON clients' ops are transformed through the log; a JSON client that joins later
    starts at the revision it is welcomed at, so nothing before it is needed."""
    hub, session_id, owner_id = hub_and_session
    room = await hub.acquire(session_id)
    try:
        for i in range(3):
            change = room.document.apply_op(EditOp("insert", 0, 0, str(i)))
            await room.commit(change, user_id=owner_id, author=None)[1]
        assert len(room._log) == 0
        welcomed_at = room.rev
        listener = recording_json_connection("listener", "VIEWER")
        room.connections.add(listener)
        change = room.document.apply_op(EditOp("insert", 0, 0, "j"))
        await room.commit(change, user_id=owner_id, author=None)[1]
        assert [op.content for op in room.ops_since(welcomed_at)] == ["j"]
        room.connections.discard(listener)
        change = room.document.apply_op(EditOp("insert", 0, 0, "k"))
        await room.commit(change, user_id=owner_id, author=None)[1]
        assert len(room._log) == 0  # the last JSON client left: the log is dropped
        with pytest.raises(StaleRevisionError):
            room.ops_since(welcomed_at)
    finally:
        hub.release(room)
