"""The Yjs interop harness, proven against the reference y-websocket server.

Real Yjs clients (Node.js, y-websocket's ``WebsocketProvider``) edit one document through
``@y/websocket-server``: if these pass, a failure of the same scenario against our server is our
server's fault, not the harness's. A small ``websockets`` server stands in for ours to check that
close codes (4401/4403/4404/1009) and query parameters reach the test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pycrdt import Doc, Text
from websockets.asyncio.server import ServerConnection, serve

from tests.support.services import require_service
from tests.support.yjs_client import (
    ReferenceServer,
    YjsClientError,
    YjsClientExited,
    YjsNodeClient,
    node_available,
    node_unavailable_reason,
)

pytestmark = pytest.mark.node

EMOJI = "👩🏽‍💻 ok 🎉"  # ZWJ sequence + skin tone: several UTF-16 surrogate pairs
ARABIC = "مرحبا بالعالم"


def require_node() -> None:
    """Skip (locally) or fail (CI=true) without Node.js and the npm packages, saying why."""
    reason = node_unavailable_reason()
    require_service(f"Node.js interop packages ({reason})" if reason else "", node_available())


@pytest.fixture(autouse=True)
def _require_node() -> None:
    require_node()


@pytest.fixture(scope="module")
async def reference_server() -> AsyncIterator[ReferenceServer]:
    """``@y/websocket-server`` on a free port of 127.0.0.1, shared by this module's tests."""
    require_node()
    async with ReferenceServer() as server:
        yield server


@pytest.fixture
def room() -> str:
    """A fresh room (share token) per test: the reference server keeps documents in memory."""
    return f"-share-{uuid.uuid4().hex}"  # leading "-": share tokens are token_urlsafe()


@pytest.fixture
async def clients(
    reference_server: ReferenceServer, room: str
) -> AsyncIterator[Callable[..., Any]]:
    """Factory of synced clients in this test's room; all of them are closed at teardown."""
    async with AsyncExitStack() as stack:

        async def connect(name: str, **options: Any) -> YjsNodeClient:
            client = YjsNodeClient(
                reference_server.url, room, params={"token": "t-" + name}, name=name, **options
            )
            await stack.enter_async_context(client)
            await client.wait_synced()
            return client

        yield connect


def text_of(update: bytes) -> str:
    """Decode a Yjs update with pycrdt (our CRDT engine) and return its ``content`` text."""
    doc: Doc[Text] = Doc()
    doc.apply_update(update)
    return str(doc.get("content", type=Text))


def is_text_in(options: set[str]) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event.get("event") == "text" and event["text"] in options


async def test_concurrent_inserts_at_the_same_index_converge(clients: Any) -> None:
    alice = await clients("alice")
    bob = await clients("bob")
    await alice.insert(0, "[]")
    await bob.wait_text("[]")

    # Alice edits offline, so her insert and Bob's are truly concurrent: same index, same base.
    await alice.disconnect()
    await alice.insert(1, EMOJI)
    await bob.insert(1, ARABIC)
    await bob.wait_text(f"[{ARABIC}]")
    await alice.connect()
    await alice.wait_synced()

    outcomes = {f"[{EMOJI}{ARABIC}]", f"[{ARABIC}{EMOJI}]"}
    merged = (await alice.wait_event(is_text_in(outcomes)))["text"]
    assert await bob.wait_text(merged) == merged
    assert text_of(await alice.state()) == merged
    assert text_of(await bob.state()) == merged


async def test_interleaved_online_edits_converge(clients: Any) -> None:
    alice = await clients("alice")
    bob = await clients("bob")

    async def type_at_start(client: YjsNodeClient, chars: str) -> None:
        for char in chars:
            await client.insert(0, char)

    typed = "😀🎉👍🏽", "سلام"
    await asyncio.gather(type_at_start(alice, typed[0]), type_at_start(bob, typed[1]))
    # Each one's characters were typed at index 0; the interleaving is Yjs's to choose, but both
    # replicas must agree on it and lose nothing.
    total = len("".join(typed))
    event = await alice.wait_event(lambda e: e.get("event") == "text" and len(e["text"]) == total)
    final = event["text"]
    assert await bob.wait_text(final) == final
    assert sorted(final) == sorted("".join(typed))


async def test_indices_are_utf16_code_units(clients: Any) -> None:
    alice = await clients("alice")
    bob = await clients("bob")
    assert await alice.insert(0, "a😀b") == 4  # the emoji is a surrogate pair: 2 units
    await alice.insert(3, "X")  # after the emoji
    await bob.wait_text("a😀Xb")
    await bob.delete(1, 2)  # the emoji, both halves
    assert await alice.wait_text("aXb") == "aXb"

    # Positions reach Y.Text as they are, even inside a surrogate pair, as from a browser; Yjs
    # then replaces each orphaned half with U+FFFD.
    await alice.insert(0, "😀")
    await alice.insert(1, "|")
    assert await alice.text() == "\ufffd|\ufffdaXb"
    assert await bob.wait_text("\ufffd|\ufffdaXb") == "\ufffd|\ufffdaXb"


async def test_late_joiner_receives_the_full_text(clients: Any) -> None:
    alice = await clients("alice")
    await alice.insert(0, ARABIC)
    await alice.insert(0, EMOJI + " ")
    expected = f"{EMOJI} {ARABIC}"
    assert await alice.text() == expected

    late = await clients("late")
    assert await late.text() == expected
    assert text_of(await late.state()) == expected


async def test_awareness_is_shared_and_removed_when_a_client_closes(clients: Any) -> None:
    alice = await clients("alice")
    bob = await clients("bob")
    state = {"user": {"name": "Ada 👩‍💻", "color": "#e91e63"}, "cursor": {"anchor": 1, "head": 4}}

    await alice.set_awareness(state)
    states = await bob.wait_awareness(2, client_id=alice.client_id, state=state)
    assert states[alice.client_id] == state
    assert (await alice.awareness())[alice.client_id] == state

    await alice.close()
    states = await bob.wait_awareness(1, client_id=alice.client_id, state=None)
    assert alice.client_id not in states
    assert alice.returncode == 0


async def test_awareness_is_removed_when_a_client_drops_unannounced(clients: Any) -> None:
    alice = await clients("alice")
    bob = await clients("bob")
    await alice.set_awareness({"user": {"name": "Alice"}})
    await bob.wait_awareness(2, client_id=alice.client_id, state={"user": {"name": "Alice"}})

    await alice.kill()  # no awareness removal sent: the server must notice the dropped socket
    await bob.wait_awareness(1, client_id=alice.client_id, state=None)


async def test_driver_reports_errors_and_exits(clients: Any) -> None:
    alice = await clients("alice")
    with pytest.raises(YjsClientError, match="non-negative integer"):
        await alice.insert(-1, "x")
    with pytest.raises(YjsClientError, match="unknown command"):
        await alice.request("no-such-command")
    with pytest.raises(YjsClientError, match="timed out"):
        await alice.wait_text("never", timeout=0.2)
    status = await alice.status()
    assert status["connected"] is True
    assert status["synced"] is True
    assert status["url"].endswith("?token=t-alice")

    await alice.close()
    assert alice.returncode == 0
    with pytest.raises(YjsClientExited):
        await alice.text()
    await alice.close()  # idempotent


# ------------------------------------------------------------------------------------------------
# Close codes, against a stand-in server that refuses every connection


@pytest.fixture
async def refusing_server() -> AsyncIterator[Callable[[int, str], Any]]:
    """A websockets server that accepts, then closes with the configured code and reason."""
    close_with: dict[str, Any] = {"code": 1000, "reason": ""}
    paths: asyncio.Queue[str] = asyncio.Queue(maxsize=100)

    async def handler(connection: ServerConnection) -> None:
        paths.put_nowait(connection.request.path if connection.request else "")
        await connection.close(close_with["code"], close_with["reason"])

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]

        def configure(code: int, reason: str) -> tuple[str, asyncio.Queue[str]]:
            close_with.update(code=code, reason=reason)
            return f"ws://127.0.0.1:{port}/ws", paths

        yield configure


@pytest.mark.parametrize(
    ("code", "reason"),
    [(4401, "unauthenticated"), (4403, "forbidden"), (4404, "unknown share token")],
)
async def test_4xxx_close_codes_are_reported_and_final(
    refusing_server: Any, room: str, code: int, reason: str
) -> None:
    url, paths = refusing_server(code, reason)
    async with YjsNodeClient(url, room, params={"token": "secret"}) as client:
        close = await client.wait_closed_code(code)
        assert (close.code, close.reason, close.local) == (code, reason, False)
        # y-websocket gives up on 4400-4499 by itself and says so.
        closed = await client.wait_event(lambda e: e.get("event") == "closed")
        assert closed["code"] == code
        assert (await client.status())["should_connect"] is False
    assert await asyncio.wait_for(paths.get(), 5) == f"/ws/{room}?token=secret"


async def test_1009_reconnects_by_default_and_not_with_reconnect_off(
    refusing_server: Any, room: str
) -> None:
    url, paths = refusing_server(1009, "frame too big")
    async with YjsNodeClient(url, room, max_backoff_ms=100) as client:
        assert (await client.wait_closed_code(1009)).reason == "frame too big"
        assert (await client.wait_closed_code(1009)).code == 1009  # it came back: a 2nd close
        await client.disconnect()
    async with YjsNodeClient(url, room, reconnect=False) as client:
        await client.wait_closed_code(1009)
        closed = await client.wait_event(lambda e: e.get("event") == "closed")
        assert closed["code"] == 1009
    assert paths.qsize() >= 3
