"""The hub fuzz suite's hostile Yjs frames against a real server over real sockets.

Per example a fresh hostile socket sends a few frames; then a JSON watcher, a hand-driven Yjs
observer (pycrdt over a raw socket) and a freshly joined JSON client must all show the same
text, and the server must still answer. Few, derandomized examples: each costs a round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from crdt.codec import (
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_sync_step1,
    encode_sync_step2,
)
from tests.support.accounts import Account
from tests.support.api import create_session
from tests.support.json_client import JsonClient
from tests.support.server_process import ServerProcess
from tests.support.waiting import eventually
from tests.unit.test_hub_fuzz import binary_frames

REAL_SERVER_FUZZ = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _open(server: ServerProcess, session: dict[str, Any], account: Account) -> Any:
    return await connect(
        f"{server.ws_base}/ws/{session['share_token']}?token={account.token}", max_size=None
    )


class YjsObserver:
    """A pycrdt replica kept in step over a raw socket by a reader task."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get("content", type=Text)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        await self.ws.send(encode_sync_step1(self.doc.get_state()))
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.ws:
                if not isinstance(frame, bytes) or frame[:1] != b"\x00":
                    continue
                message = decode_message(frame)
                if isinstance(message, SyncStep1):
                    await self.ws.send(encode_sync_step2(self.doc.get_update(message.state_vector)))
                elif isinstance(message, SyncStep2 | SyncUpdate):
                    self.doc.apply_update(message.update)


async def _send_hostile(ws: Any, frames: list[bytes]) -> None:
    """Send ``frames``; the server may close the socket at any of them."""
    with contextlib.suppress(ConnectionClosed):
        await ws.send(encode_sync_step1(b"\x00"))
        for frame in frames:
            await ws.send(frame)
        await ws.send(b"\x03")  # query awareness: answered unless the socket was closed
        async with asyncio.timeout(5):  # answered or closed, never ignored
            while True:
                frame = await ws.recv()
                if isinstance(frame, bytes) and frame[:1] == b"\x01":
                    return


@REAL_SERVER_FUZZ
@given(st.lists(binary_frames, min_size=1, max_size=4))
async def test_hostile_yjs_frames_over_real_sockets_leave_every_observer_in_step(
    server: ServerProcess, team: list[Account], frames: list[bytes]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "hello wörld 😀")
    async with JsonClient(server.ws_base, session["share_token"], bob.token) as watcher:
        observer = YjsObserver(await _open(server, session, bob))
        try:
            hostile = await _open(server, session, alice)
            try:
                await _send_hostile(hostile, frames)
            finally:
                await hostile.close()
            async with JsonClient(server.ws_base, session["share_token"], bob.token) as fresh:

                async def in_step() -> bool:
                    return watcher.text == str(observer.text) == fresh.text

                # A frame applied just before the fresh join reaches the others a moment later.
                await eventually(in_step, timeout=5)
                await watcher.send({"type": "ping"})
                await watcher.wait_for(lambda m: m.get("type") == "pong")
        finally:
            observer.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await observer.task
            await observer.ws.close()
