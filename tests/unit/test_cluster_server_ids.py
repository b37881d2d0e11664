"""Two nodes on one in-process bus: a client of one node cannot write under the other's id.

Node A refuses structs under its own client id from anybody (see test_crdt_own_client_id);
node B must refuse them from its clients too, or B (and its clients) would hold text that A
never takes: the nodes would serve different documents.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from pycrdt import Doc, Text

from crdt import EditOp, PromptDocument
from crdt.codec import encode_sync_update
from server.hub.closing import CloseCode, CloseConnection
from server.hub.cluster import RoomLink
from server.hub.connection import WireProtocol
from server.hub.memory_broker import MemoryBroker, MemoryBus
from server.hub.room import Room
from server.hub.yjs_protocol import handle_binary_frame
from tests.support.transports import InstantWriter, recording_json_connection

BASE = PromptDocument.from_text("hello", client_id=1).full_state()


def node_room(client_id: int) -> Room:
    return Room(
        session_id="s",
        tenant_id="t",
        name="n",
        description=None,
        document=PromptDocument.from_state(BASE, client_id=client_id),
        writer=InstantWriter(),  # type: ignore[arg-type]
        node_id=f"node-{client_id}",
        log_remote_updates=True,
    )


@asynccontextmanager
async def two_nodes() -> AsyncIterator[tuple[Room, Room]]:
    bus = MemoryBus()
    async with AsyncExitStack() as stack:
        rooms = []
        for client_id in (100, 200):
            broker = await stack.enter_async_context(MemoryBroker(f"n{client_id}", bus))
            link = RoomLink("s", broker, lambda *_: None)
            await link.subscribe()
            stack.push_async_callback(link.close)
            room = node_room(client_id)
            link.attach(room)
            rooms.append(room)
        yield rooms[0], rooms[1]


async def until(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    """Poll ``condition`` on the event loop, for at most ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def forged_update(room: Room, client_id: int, content: str) -> bytes:
    doc: Doc[Any] = Doc(client_id=client_id)
    text = doc.get("content", type=Text)
    doc.apply_update(room.document.full_state())
    before = doc.get_state()
    with doc.transaction():
        text.insert(0, content)
    return doc.get_update(before)


async def test_a_client_of_one_node_cannot_write_under_another_nodes_id() -> None:
    closed: CloseConnection | None = None
    async with two_nodes() as (node_a, node_b):
        a_id = node_a.document.client_id
        # Node A writes (a server-side edit): node B learns A's id and gets the text.
        node_a.commit(
            node_a.document.apply_op(EditOp("insert", 5, 0, "!", "user")),
            user_id="ana",
            author=None,
        )
        await until(lambda: node_b.text == "hello!")
        mallory = recording_json_connection("mallory", "EDITOR")
        mallory.protocol = WireProtocol.YJS
        node_b.add(mallory)
        try:
            handle_binary_frame(
                node_b, mallory, encode_sync_update(forged_update(node_b, a_id, "X"))
            )
        except CloseConnection as refused:
            closed = refused
        # An ordinary client update on B still reaches A.
        handle_binary_frame(node_b, mallory, encode_sync_update(forged_update(node_b, 7, "Y")))
        await until(lambda: node_b.text.startswith("Y") and node_a.text.startswith("Y"))
        texts = (node_a.text, node_b.text)
    # Checked outside the nodes' context, whose teardown waits for the links' tasks.
    assert closed is not None and closed.code == CloseCode.INVALID_PAYLOAD
    assert "another server's" in closed.reason
    assert texts == ("Yhello!", "Yhello!")
