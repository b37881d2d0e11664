"""The websocket transport under the hub, against real server processes in each of its modes.

``direct`` is the default (``server.ws_protocol``: synchronous writes of shared frames and
callback reads), ``direct`` with permessage-deflate negotiated (each connection then encodes for
itself), and ``asgi`` (uvicorn's stock protocol: the portable path any ASGI server gives).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection, connect

from crdt.codec import (
    AwarenessEntry,
    AwarenessMessage,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_awareness,
    encode_awareness_message,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
)
from tests.support.accounts import Account, create_accounts
from tests.support.api import create_session, grant
from tests.support.json_client import JsonClient
from tests.support.server_process import ServerProcess, running_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

MODES = {
    "direct": {"PROMPT_STUDIO_WS_TRANSPORT": "direct"},
    "direct-deflate": {"PROMPT_STUDIO_WS_TRANSPORT": "direct", "PROMPT_STUDIO_WS_COMPRESSION": "1"},
    "asgi": {"PROMPT_STUDIO_WS_TRANSPORT": "asgi"},
}
# Small enough that a client which stops reading overflows it quickly.
SEND_QUEUE_LIMIT = 16
# The server aborts a dropped client this long after closing it (server.ws_protocol).
DROP_GRACE_SECONDS = 1.0
# The floods below: this many awareness states, each as big as the awareness cap allows, so a
# stalled client's buffers fill (the rate limit is raised to let one client send them).
FLOOD_MESSAGES = 3000
FLOOD_STATE_BYTES = 8000


@pytest.fixture(scope="module", params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(
    mode: str, server_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    env = {
        **MODES[mode],
        "PROMPT_STUDIO_SEND_QUEUE_LIMIT": str(SEND_QUEUE_LIMIT),
        "PROMPT_STUDIO_DROP_GRACE_SECONDS": str(DROP_GRACE_SECONDS),
        "PROMPT_STUDIO_RATE_LIMIT_PER_SECOND": str(FLOOD_MESSAGES),
        "PROMPT_STUDIO_RATE_LIMIT_BURST": str(FLOOD_MESSAGES),
        # The flooder's user sends it all too: the per-user bucket must not cut in first.
        "PROMPT_STUDIO_USER_RATE_LIMIT_PER_SECOND": str(FLOOD_MESSAGES),
        "PROMPT_STUDIO_USER_RATE_LIMIT_BURST": str(FLOOD_MESSAGES),
    }
    async with running_server(
        server_database_url, Path(tmp_path_factory.mktemp("logs")), env
    ) as proc:
        yield proc


@pytest_asyncio.fixture(loop_scope="session")
async def pair(server: ServerProcess) -> tuple[Account, Account, dict[str, str]]:
    """Two editors of one fresh session."""
    alice, bob = await create_accounts(server.database_url, ["Alice", "Bob"])
    session = await create_session(server, alice, "Hello")
    await grant(server, alice, session["id"], bob)
    return alice, bob, session


class YjsPeer:
    """A pycrdt replica speaking y-websocket over a real socket (permessage-deflate offered)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get("content", type=Text)
        self.awareness: list[AwarenessEntry] = []

    @classmethod
    async def join(cls, server: ServerProcess, share_token: str, token: str) -> YjsPeer:
        ws = await connect(f"{server.ws_base}/ws/{share_token}?token={token}", max_size=None)
        peer = cls(ws)
        await ws.send(encode_sync_step1(peer.doc.get_state()))
        await peer.receive_until(lambda: str(peer.text) != "")
        return peer

    async def receive_until(self, done: object, timeout: float = 10.0) -> None:
        """Apply incoming frames until ``done()`` holds."""
        deadline = time.monotonic() + timeout
        while not done():  # type: ignore[operator]
            raw = await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic()))
            assert isinstance(raw, bytes)
            message = decode_message(raw)
            if isinstance(message, SyncStep1):
                await self.ws.send(encode_sync_step2(self.doc.get_update(message.state_vector)))
            elif isinstance(message, SyncStep2 | SyncUpdate):
                self.doc.apply_update(message.update)
            elif isinstance(message, AwarenessMessage):
                self.awareness.append(message)  # type: ignore[arg-type]

    async def insert(self, index: int, content: str) -> None:
        before = self.doc.get_state()
        self.text.insert(index, content)
        await self.ws.send(encode_sync_update(self.doc.get_update(before)))


def negotiated_extensions(ws: ClientConnection) -> str | None:
    assert ws.response is not None
    return ws.response.headers.get("Sec-WebSocket-Extensions")


async def test_yjs_updates_fan_out_in_every_mode(
    server: ServerProcess, mode: str, pair: tuple[Account, Account, dict[str, str]]
) -> None:
    alice, bob, session = pair
    a = await YjsPeer.join(server, session["share_token"], alice.token)
    b = await YjsPeer.join(server, session["share_token"], bob.token)
    try:
        if mode == "direct-deflate":
            assert "permessage-deflate" in (negotiated_extensions(a.ws) or "")
        else:
            assert negotiated_extensions(a.ws) is None  # offered by the client, not accepted
        for n in range(20):
            await a.insert(len(str(a.text)), f" a{n}")
            await b.insert(0, f"b{n} ")
        expected_len = len("Hello") + sum(len(f" a{n}") + len(f"b{n} ") for n in range(20))
        await a.receive_until(lambda: len(str(a.text)) == expected_len)
        await b.receive_until(lambda: len(str(b.text)) == expected_len)
        assert str(a.text) == str(b.text)
    finally:
        await a.ws.close()
        await b.ws.close()


async def test_json_ops_acks_and_broadcasts_in_every_mode(
    server: ServerProcess, pair: tuple[Account, Account, dict[str, str]]
) -> None:
    alice, bob, session = pair
    async with (
        JsonClient(server.ws_base, session["share_token"], alice.token) as a,
        JsonClient(server.ws_base, session["share_token"], bob.token) as b,
    ):
        for n in range(10):
            ack = await a.insert(a.utf16_length(), f" {n}")
            assert ack["type"] == "ack"
        await b.wait_text("Hello 0 1 2 3 4 5 6 7 8 9")
        revs = [m["rev"] for m in b.messages if m.get("type") == "op"]
        assert revs == sorted(revs) and len(revs) == 10


def _raw_handshake(port: int, path: str, *, rcvbuf: int | None = None) -> socket.socket:
    """Open a websocket by hand (no client library), optionally with a tiny receive buffer."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(1)
        assert chunk, "the server closed during the handshake"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    size = len(payload)
    header = bytes((0x80 | opcode,)) + (
        bytes((0x80 | size,)) if size < 126 else struct.pack("!BH", 0x80 | 126, size)
    )
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _read_frame(sock: socket.socket) -> bytes:
    """The payload of the next (small, unfragmented) frame."""
    head = sock.recv(2, socket.MSG_WAITALL)
    size = head[1] & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", sock.recv(2, socket.MSG_WAITALL))
    elif size == 127:
        (size,) = struct.unpack("!Q", sock.recv(8, socket.MSG_WAITALL))
    return sock.recv(size, socket.MSG_WAITALL) if size else b""


def _read_frames_until_close(sock: socket.socket, timeout: float) -> int | None:
    """Read frames until a close frame (its code) or the end of the stream (None)."""
    sock.settimeout(timeout)
    buffer = b""

    def need(n: int) -> bool:
        nonlocal buffer
        while len(buffer) < n:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            buffer += chunk
        return True

    try:
        while True:
            if not need(2):
                return None
            opcode, size = buffer[0] & 0x0F, buffer[1] & 0x7F
            offset = 2
            if size == 126:
                if not need(4):
                    return None
                (size,) = struct.unpack("!H", buffer[2:4])
                offset = 4
            elif size == 127:
                if not need(10):
                    return None
                (size,) = struct.unpack("!Q", buffer[2:10])
                offset = 10
            if not need(offset + size):
                return None
            payload, buffer = buffer[offset : offset + size], buffer[offset + size :]
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else None
    except (ConnectionResetError, TimeoutError):
        return None


async def test_invalid_utf8_in_a_text_frame_closes_1007(
    server: ServerProcess, pair: tuple[Account, Account, dict[str, str]]
) -> None:
    alice, _, session = pair
    path = f"/ws/{session['share_token']}?token={alice.token}&protocol=json"

    def exchange(wait_for_welcome: bool) -> int | None:
        with _raw_handshake(server.port, path) as sock:
            if wait_for_welcome:  # admitted: frames now take the transport's direct path
                assert b'"welcome"' in _read_frame(sock)
            sock.sendall(_masked_frame(0x1, b'{"type":"ping","x":"\xff\xfe"}'))
            return _read_frames_until_close(sock, 10)

    assert await asyncio.to_thread(exchange, False) == 1007
    assert await asyncio.to_thread(exchange, True) == 1007


async def _flood_a_stalled_client(
    server: ServerProcess,
    session: dict[str, str],
    flooder: YjsPeer,
    token: str,
    watcher: JsonClient | None = None,
) -> socket.socket:
    """A Yjs client (``token``) that stops reading while ``flooder`` floods its room with
    awareness; returns its socket, whose queue has overflowed by now. ``watcher``, in another
    room, has an edit acknowledged every so often meanwhile."""
    path = f"/ws/{session['share_token']}?token={token}&protocol=yjs"
    stalled = await asyncio.to_thread(_raw_handshake, server.port, path, rcvbuf=4096)
    for clock in range(1, FLOOD_MESSAGES):
        # Random, so permessage-deflate cannot shrink the flood to nothing.
        blob = base64.b64encode(os.urandom(FLOOD_STATE_BYTES * 3 // 4)).decode()
        state = {"user": {"name": "Alice"}, "blob": blob, "n": clock}
        entry = AwarenessEntry(flooder.doc.client_id, clock, state)
        await flooder.ws.send(encode_awareness_message(encode_awareness([entry])))
        if watcher is not None and clock % 200 == 0:
            ack = await watcher.insert(0, ".")
            assert ack["type"] == "ack"
    return stalled


async def test_a_client_that_stops_reading_is_dropped_and_the_others_carry_on(
    server: ServerProcess, pair: tuple[Account, Account, dict[str, str]]
) -> None:
    """A Yjs client stops reading while awareness floods its room. Its queue overflows: the
    server closes it (1013, behind what was already buffered) or drops it, and serves the rest:
    another room throughout, this room's other clients afterwards."""
    alice, bob, session = pair
    other_room = await create_session(server, alice, "elsewhere")
    flooder = await YjsPeer.join(server, session["share_token"], alice.token)
    watcher = await JsonClient(server.ws_base, other_room["share_token"], alice.token).connect()
    try:
        flood = _flood_a_stalled_client(server, session, flooder, bob.token, watcher)
        with await flood as stalled:
            code = await asyncio.to_thread(_read_frames_until_close, stalled, 30)
        # 1013 when the close frame made it out behind the buffered data; None when the
        # connection was dropped without one (it read nothing in time).
        assert code in (1013, None)
        await flooder.insert(0, "still here ")
        async with JsonClient(server.ws_base, session["share_token"], bob.token) as late:
            await late.wait_text("still here Hello")
    finally:
        await flooder.ws.close()
        await watcher.close()


async def test_a_dropped_client_that_reads_its_backlog_leaves_no_error_behind(
    server: ServerProcess, pair: tuple[Account, Account, dict[str, str]]
) -> None:
    """The slow client dropped with 1013 reads what was buffered after all, so its connection
    ends normally; the abort scheduled at the drop, due later, must then find nothing to do
    (it used to log ``AttributeError: 'NoneType' object has no attribute 'call_soon'``)."""
    alice, bob, session = pair
    assert server.log_path is not None
    log_start = server.log_path.stat().st_size  # earlier tests' lines are theirs
    flooder = await YjsPeer.join(server, session["share_token"], alice.token)
    try:
        with await _flood_a_stalled_client(server, session, flooder, bob.token) as stalled:
            code = await asyncio.to_thread(_read_frames_until_close, stalled, 30)
            assert code in (1013, None)
            dropped_at = time.monotonic()
    finally:
        await flooder.ws.close()
    deadline = dropped_at + DROP_GRACE_SECONDS + 2.0
    # Absence can only be shown by looking until the abort is long due; fail as soon as it shows.
    while time.monotonic() < deadline:
        errors = _errors_in(server.log_path, log_start)
        assert not errors, "\n".join(errors)
        await asyncio.sleep(0.2)
    assert not _errors_in(server.log_path, log_start)


# Loggers of the websocket path; other components' errors (a background job, say) are theirs.
TRANSPORT_LOGGERS = (
    " ERROR asyncio:",
    " ERROR uvicorn.",
    " ERROR server.ws_protocol:",
    " ERROR server.hub.",
)


def _errors_in(log_path: Path, start: int) -> list[str]:
    with log_path.open("rb") as log:
        log.seek(start)
        lines = log.read().decode(errors="replace").splitlines()
    return [line for line in lines if any(name in line for name in TRANSPORT_LOGGERS)]


async def test_frames_sent_before_the_room_is_joined_are_handled_in_order(
    server: ServerProcess, pair: tuple[Account, Account, dict[str, str]]
) -> None:
    """A client may send before admission finished; those frames are handled first, in order."""
    alice, _, session = pair
    ws = await connect(
        f"{server.ws_base}/ws/{session['share_token']}?token={alice.token}&protocol=json"
    )
    try:
        for n in range(5):
            await ws.send(json.dumps({"type": "ping", "id": n}))
        pongs: list[int] = []
        while len(pongs) < 5:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message["type"] == "pong":
                pongs.append(message["id"])
        assert pongs == [0, 1, 2, 3, 4]
    finally:
        await ws.close()
