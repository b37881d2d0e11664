"""A connection's outgoing path: direct writes while nothing waits, an ordered bounded queue
otherwise, and a client that cannot keep up closed with 1013."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.auth import Principal
from server.hub.connection import ClientConnection, Deferred
from server.hub.ratelimit import TokenBucket
from tests.support.transports import RecordingTransport

pytestmark = pytest.mark.asyncio(loop_scope="session")


class StuckSocket:
    """A websocket (ASGI path) whose peer stopped reading: every send blocks until released."""

    def __init__(self) -> None:
        from starlette.websockets import WebSocketState

        self.application_state = WebSocketState.CONNECTED
        self.sent: list[Any] = []
        self.closed: tuple[int, str] | None = None
        self.release = asyncio.Event()

    async def send_text(self, data: str) -> None:
        await self.release.wait()
        self.sent.append(data)

    async def send_bytes(self, data: bytes) -> None:
        await self.release.wait()
        self.sent.append(data)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def connection(
    socket: StuckSocket, limit: int = 16, direct: RecordingTransport | None = None
) -> ClientConnection:
    principal = Principal("u", "t", "u@example.test", "U", "#3B82F6")
    return ClientConnection(
        socket,  # type: ignore[arg-type]
        principal,
        "EDITOR",
        send_queue_limit=limit,
        rate_limit=TokenBucket(100, 100),
        direct=direct,
    )


async def test_overflow_closes_with_1013_drops_the_backlog_and_ends_a_stuck_connection() -> None:
    socket = StuckSocket()
    conn = connection(socket)
    for i in range(100):
        conn.send(f"message {i}")
    assert conn.is_closing and conn.close_code == 1013
    # The write stuck on the client was given up: the connection ends without its socket.
    await asyncio.wait_for(conn.ended(), 5)
    socket.release.set()
    await conn.flush(5)
    assert socket.sent == []


async def test_within_the_limit_everything_is_delivered_in_order() -> None:
    socket = StuckSocket()
    socket.release.set()
    conn = connection(socket)
    for i in range(15):  # the close takes the 16th place
        conn.send(f"m{i}")
    conn.close(1000, "done")
    await conn.flush(5)
    assert socket.sent == [f"m{i}" for i in range(15)]
    assert socket.closed == (1000, "done")
    assert not conn.ended().done()  # it ends the ordinary way, when the socket closes


async def test_a_deferred_ack_holds_back_later_messages() -> None:
    socket = StuckSocket()
    socket.release.set()
    conn = connection(socket)
    committed: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
    conn.send(Deferred(committed, on_result=lambda ids: f"ack {ids}", on_error=lambda e: "err"))
    conn.send("op rev 2")
    await asyncio.sleep(0)
    assert socket.sent == []
    committed.set_result([7])
    conn.close(1000, "done")
    await conn.flush(5)
    assert socket.sent == ["ack [7]", "op rev 2"]


async def test_a_direct_transport_is_written_at_once_while_nothing_waits() -> None:
    socket, direct = StuckSocket(), RecordingTransport()
    conn = connection(socket, direct=direct)
    conn.send(b"\x00\x02update")
    conn.send_json({"type": "pong"})
    assert direct.written == [b"\x00\x02update", '{"type":"pong"}']
    assert socket.sent == []


async def test_once_something_waits_later_messages_queue_behind_it_in_order() -> None:
    socket, direct = StuckSocket(), RecordingTransport()
    conn = connection(socket, direct=direct)
    direct.full = True  # the transport's buffer is above its high-water mark
    conn.send("first")
    direct.full = False
    conn.send("second")  # writable again, but "first" is still waiting: it must not overtake
    committed: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
    conn.send(Deferred(committed, on_result=lambda ids: "ack", on_error=lambda e: "err"))
    conn.send("after the ack")
    assert direct.written == []
    await asyncio.sleep(0.01)
    # In turn, queued messages go straight to the transport while it has room.
    assert direct.written == ["first", "second"]
    committed.set_result([1])
    await conn.flush(5)
    assert direct.written == ["first", "second", "ack", "after the ack"]
    assert socket.sent == []
    conn.send("direct again")  # nothing waits any more
    assert direct.written[-1] == "direct again"


async def test_a_queued_message_waits_on_the_asgi_send_while_the_transport_is_full() -> None:
    socket, direct = StuckSocket(), RecordingTransport()
    conn = connection(socket, direct=direct)
    direct.full = True
    conn.send("first")
    conn.send("second")
    await asyncio.sleep(0.01)
    assert direct.written == [] and socket.sent == []  # the ASGI send waits for room
    socket.release.set()
    await conn.flush(5)
    assert socket.sent == ["first", "second"]


async def test_overflow_on_a_direct_transport_drops_the_socket() -> None:
    socket, direct = StuckSocket(), RecordingTransport()
    conn = connection(socket, direct=direct)
    direct.full = True
    for i in range(100):
        conn.send(f"m{i}")
    assert direct.dropped is not None and direct.dropped[0] == 1013
    assert conn.is_closing and conn.close_code == 1013
    conn.send("ignored")
    await conn.flush(0)
