"""A connection's outgoing queue is bounded: a client that cannot keep up is closed with 1013."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.auth import Principal
from server.hub.connection import ClientConnection, Deferred
from server.hub.ratelimit import TokenBucket

pytestmark = pytest.mark.asyncio(loop_scope="session")


class StuckSocket:
    """A websocket whose peer stopped reading: every send blocks until released."""

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


def connection(socket: StuckSocket, limit: int = 16) -> ClientConnection:
    principal = Principal("u", "t", "u@example.test", "U", "#3B82F6")
    return ClientConnection(
        socket,  # type: ignore[arg-type]
        principal,
        "EDITOR",
        send_queue_limit=limit,
        rate_limit=TokenBucket(100, 100),
    )


async def test_overflow_closes_with_1013_and_drops_the_backlog() -> None:
    socket = StuckSocket()
    conn = connection(socket)
    sender = asyncio.create_task(conn.run_sender())
    for i in range(100):
        conn.send(f"message {i}")
    assert conn.is_closing and conn.close_code == 1013
    socket.release.set()
    await asyncio.wait_for(sender, 5)
    # At most the one message that was already being written got out; then the close.
    assert len(socket.sent) <= 1
    assert socket.closed is not None and socket.closed[0] == 1013
    assert "slow" in socket.closed[1]


async def test_within_the_limit_everything_is_delivered_in_order() -> None:
    socket = StuckSocket()
    socket.release.set()
    conn = connection(socket)
    sender = asyncio.create_task(conn.run_sender())
    for i in range(15):  # the close takes the 16th place
        conn.send(f"m{i}")
    conn.close(1000, "done")
    await asyncio.wait_for(sender, 5)
    assert socket.sent == [f"m{i}" for i in range(15)]
    assert socket.closed == (1000, "done")


async def test_a_deferred_ack_holds_back_later_messages() -> None:
    socket = StuckSocket()
    socket.release.set()
    conn = connection(socket)
    sender = asyncio.create_task(conn.run_sender())
    committed: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
    conn.send(Deferred(committed, on_result=lambda ids: f"ack {ids}", on_error=lambda e: "err"))
    conn.send("op rev 2")
    await asyncio.sleep(0)
    assert socket.sent == []
    committed.set_result([7])
    conn.close(1000, "done")
    await asyncio.wait_for(sender, 5)
    assert socket.sent == ["ack [7]", "op rev 2"]
