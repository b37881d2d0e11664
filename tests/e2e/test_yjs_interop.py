"""Real Yjs clients (yjs 13 + y-websocket 3 on Node.js) against the running server.

Also raw y-websocket frames from Python for the malformed-input cases a stock client never sends.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from crdt.codec import encode_sync_step1, encode_sync_update
from tests.support.accounts import Account
from tests.support.api import create_session, grant, has_content, session_content
from tests.support.json_client import JsonClient
from tests.support.server_process import ServerProcess
from tests.support.services import require_service
from tests.support.waiting import eventually
from tests.support.yjs_client import YjsNodeClient, node_available, node_unavailable_reason

pytestmark = pytest.mark.asyncio(loop_scope="session")
node = pytest.mark.node


@pytest.fixture
def need_node() -> None:
    require_service(f"Node.js interop packages ({node_unavailable_reason()})", node_available())


def yjs(
    server: ServerProcess, session: dict[str, Any], account: Account, **kw: Any
) -> YjsNodeClient:
    return YjsNodeClient(
        f"{server.ws_base}/ws", session["share_token"], params={"token": account.token}, **kw
    )


@node
async def test_yjs_clients_edit_concurrently_and_converge(
    need_node: None, server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, carol = team
    session = await create_session(server, alice, "Base: ")
    for user in (bob, carol):
        await grant(server, alice, session["id"], user)
    async with (
        yjs(server, session, alice) as a,
        yjs(server, session, bob) as b,
        yjs(server, session, carol) as c,
    ):
        for client in (a, b, c):
            await client.wait_text("Base: ")
        await asyncio.gather(a.insert(6, "مرحبا "), b.insert(6, "😀 "), c.insert(0, "[x] "))
        pieces = ("مرحبا ", "😀 ", "[x] ", "Base: ")
        async with asyncio.timeout(10):
            while True:
                texts = {await a.text(), await b.text(), await c.text()}
                if len(texts) == 1 and all(next(iter(texts)).count(p) == 1 for p in pieces):
                    break
                await asyncio.sleep(0.02)
        (text,) = texts
    await eventually(lambda: has_content(server, alice, session["id"], text))


@node
async def test_late_joiner_gets_the_full_state_and_history_records_yjs_edits(
    need_node: None, server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "")
    async with yjs(server, session, alice) as a:
        await a.wait_synced()
        await a.insert(0, "written by yjs ✍")
        await a.delete(0, 8)
        async with yjs(server, session, bob) as late:
            await late.wait_text("by yjs ✍")
    async with httpx.AsyncClient(base_url=server.base_url, headers=alice.headers) as http:
        history = (await http.get(f"/api/sessions/{session['id']}/history")).json()
    ops = [item["operation"] for item in reversed(history["items"])]
    assert ops[0]["type"] == "insert" and ops[0]["content"] == "written by yjs ✍"
    assert ops[-1] == {"type": "delete", "position": 0, "length": 8, "origin": "user"}


@node
async def test_mixed_yjs_and_json_clients_converge(
    need_node: None, server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "one two three")
    await grant(server, alice, session["id"], bob)
    async with (
        yjs(server, session, alice) as y,
        JsonClient(server.ws_base, session["share_token"], bob.token) as j,
    ):
        await y.wait_text("one two three")
        base = j.rev
        # Concurrent: the JSON op is made against a revision that lacks the Yjs edits.
        await y.insert(0, "zero ")
        await y.insert(18, " four")
        reply = await j.op(
            {"type": "replace", "position": 4, "length": 3, "content": "TWO"}, rev=base
        )
        assert reply["type"] == "ack"
        expected = "zero one TWO three four"
        await y.wait_text(expected)
        await j.wait_text(expected)
    assert await session_content(server, alice, session["id"]) == expected


@node
async def test_awareness_reaches_both_kinds_of_client_and_is_removed_on_leave(
    need_node: None, server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, carol = team
    session = await create_session(server, alice, "presence")
    async with (
        yjs(server, session, alice) as a,
        JsonClient(server.ws_base, session["share_token"], carol.token) as watcher,
    ):
        await a.wait_synced()
        async with yjs(server, session, bob) as b:
            await b.wait_synced()
            await a.set_awareness({"user": {"name": "Alice"}, "cursor": 3})
            states = await b.wait_awareness(
                client_id=a.client_id, state={"user": {"name": "Alice"}, "cursor": 3}
            )
            assert states[a.client_id]["cursor"] == 3
            seen = await watcher.wait_for(
                lambda m: (
                    m.get("type") == "presence"
                    and m.get("client_id") == a.client_id
                    and "user" in (m.get("state") or {})
                )
            )
            assert seen["state"] == {"user": {"name": "Alice"}, "cursor": 3}
            # JSON presence reaches the Yjs clients as an awareness state.
            await watcher.send({"type": "presence", "cursor": {"anchor": 0, "head": 4}})
            assert watcher.welcome is not None
            json_id = watcher.welcome["client_id"]
            states = await a.wait_awareness(
                client_id=json_id,
                state={
                    "user": {"id": carol.user_id, "name": "Carol", "color": "#3B82F6"},
                    "cursor": {"anchor": 0, "head": 4},
                },
            )
        # Bob dropped: nothing of his remains, and Alice's state leaves when she closes.
        await a.wait_awareness(client_id=b.client_id, state=None)
        await a.close()
        gone = await watcher.wait_for(
            lambda m: (
                m.get("type") == "presence"
                and m.get("event") == "remove"
                and m.get("client_id") == a.client_id
            )
        )
        assert gone["user_id"] == alice.user_id and gone["state"] is None
        left = await watcher.wait_for(
            lambda m: (
                m.get("type") == "presence"
                and m.get("event") == "leave"
                and m.get("user_id") == alice.user_id
            )
        )
        assert left["client_id"] != a.client_id  # the connection's own id, not the Yjs one


@node
async def test_viewer_updates_are_neither_applied_nor_relayed(
    need_node: None, server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "read only")
    async with yjs(server, session, alice) as owner, yjs(server, session, bob) as viewer:
        await viewer.wait_text("read only")
        await viewer.insert(0, "HACK ")
        await owner.insert(9, "!")
        await viewer.wait_text("HACK read only!")  # the viewer's own copy diverges locally
        await owner.wait_text("read only!")
        assert await owner.text() == "read only!"
    assert await session_content(server, alice, session["id"]) == "read only!"


@node
async def test_yjs_client_with_bad_token_is_closed_4401(
    need_node: None, server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    session = await create_session(server, alice)
    client = YjsNodeClient(
        f"{server.ws_base}/ws", session["share_token"], params={"token": "wrong"}, reconnect=False
    )
    async with client:
        close = await client.wait_closed_code(4401)
        assert close.reason


@node
async def test_yjs_client_survives_a_server_restart_without_duplicating_text(
    need_node: None, own_server: ServerProcess
) -> None:
    from tests.support.accounts import create_accounts

    (alice,) = await create_accounts(own_server.database_url, ["Alice"])
    session = await create_session(own_server, alice, "seeded from text")
    async with yjs(own_server, session, alice, max_backoff_ms=200) as client:
        await client.wait_text("seeded from text")
        await client.insert(0, "> ")
        await eventually(
            lambda: has_content(own_server, alice, session["id"], "> seeded from text")
        )
        await own_server.stop()
        await client.wait_event(
            lambda e: e.get("event") == "status" and e.get("status") == "disconnected"
        )
        await own_server.start()
        await client.wait_event(
            lambda e: e.get("event") == "synced" and e.get("synced"), timeout=20
        )
        await client.insert(len("> seeded from text"), " <")
        assert await client.text() == "> seeded from text <"
        await eventually(
            lambda: has_content(own_server, alice, session["id"], "> seeded from text <")
        )


async def _raw(server: ServerProcess, session: dict[str, Any], account: Account) -> Any:
    return await connect(
        f"{server.ws_base}/ws/{session['share_token']}?token={account.token}", max_size=None
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"", 1002),  # empty
        (b"\x00", 1002),  # sync without a sub-type
        (b"\x00\x02\x05ab", 1002),  # update whose length says 5 but carries 2 bytes
        (b"\x09\x00", 1002),  # unknown message type
        (b"\x00\x00\x00trailing", 1002),  # more than one message in a frame
        (b"\x01\x05\x01\x02", 1002),  # truncated awareness
        (encode_sync_update(b"\x01\x02\x03garbage"), 1007),  # undecodable Yjs update
        (encode_sync_update(b"\x00" * (1024 * 1024 + 1)), 1009),  # over the frame limit
    ],
)
async def test_malformed_binary_frames_close_only_their_connection(
    server: ServerProcess, team: list[Account], frame: bytes, code: int
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "intact")
    async with JsonClient(server.ws_base, session["share_token"], bob.token) as bystander:
        ws = await _raw(server, session, alice)
        try:
            await ws.send(encode_sync_step1(b"\x00"))
            await ws.send(frame)
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(5):
                    while True:
                        await ws.recv()
            assert ws.close_code == code
        finally:
            await ws.close()
        await bystander.send({"type": "ping"})
        await bystander.wait_for(lambda m: m.get("type") == "pong")
        assert not [m for m in bystander.messages if m.get("type") == "op"]
    assert await session_content(server, alice, session["id"]) == "intact"


async def test_python_yjs_peer_syncs_and_edits(server: ServerProcess, team: list[Account]) -> None:
    """A pycrdt document speaking the binary protocol by hand: step 1/2 and an update."""
    from crdt.codec import SyncStep1, SyncStep2, SyncUpdate, decode_message, encode_sync_step2

    alice, bob, _ = team
    session = await create_session(server, alice, "py")
    doc = Doc()
    text = doc.get("content", type=Text)
    async with JsonClient(server.ws_base, session["share_token"], bob.token) as watcher:
        ws = await _raw(server, session, alice)
        try:
            await ws.send(encode_sync_step1(doc.get_state()))
            synced = False
            async with asyncio.timeout(5):
                while not synced:
                    message = decode_message(await ws.recv())
                    if isinstance(message, SyncStep1):
                        await ws.send(encode_sync_step2(doc.get_update(message.state_vector)))
                    elif isinstance(message, SyncStep2 | SyncUpdate):
                        doc.apply_update(message.update)
                        synced = str(text) == "py"
            before = doc.get_state()
            text += "thon"
            await ws.send(encode_sync_update(doc.get_update(before)))
            await watcher.wait_text("python")
        finally:
            await ws.close()
