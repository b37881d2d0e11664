"""loadtest.light_ws against a real websockets server, and raw TCP servers that break the rules.

Every wait is bounded (``asyncio.wait_for``); every client is closed so its transport is gone
before the test ends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import random
import re
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from loadtest.light_ws import HandshakeRejected, LightProtocolError, LightWebSocket

pytestmark = pytest.mark.asyncio(loop_scope="session")

TIMEOUT = 10.0
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Recorder:
    """The callbacks of one client, and events to wait on them."""

    def __init__(self) -> None:
        self.messages: list[bytes | str] = []
        self.closes: list[tuple[int, str]] = []
        self.after_close = 0
        self._wanted = 0
        self._enough = asyncio.Event()
        self._closed = asyncio.Event()

    def on_message(self, message: bytes | str) -> None:
        if self.closes:
            self.after_close += 1
        self.messages.append(message)
        if self._wanted and len(self.messages) >= self._wanted:
            self._enough.set()

    def on_close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))
        self._closed.set()

    async def connect(self, url: str, **kwargs: Any) -> LightWebSocket:
        kwargs.setdefault("open_timeout", TIMEOUT)
        return await LightWebSocket.connect(
            url, on_message=self.on_message, on_close=self.on_close, **kwargs
        )

    async def wait_messages(self, count: int) -> list[bytes | str]:
        if len(self.messages) < count:
            self._wanted = count
            self._enough.clear()
            await asyncio.wait_for(self._enough.wait(), TIMEOUT)
        return self.messages

    async def wait_closed(self) -> tuple[int, str]:
        await asyncio.wait_for(self._closed.wait(), TIMEOUT)
        assert len(self.closes) == 1, self.closes
        assert self.after_close == 0
        return self.closes[0]


@contextlib.asynccontextmanager
async def ws_server(
    handler: Callable[[ServerConnection], Awaitable[None]], **kwargs: Any
) -> AsyncIterator[str]:
    """A websockets server on 127.0.0.1; yields its ws:// URL."""
    async with serve(handler, "127.0.0.1", 0, **kwargs) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


@contextlib.asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    """A plain TCP server running ``handler`` per connection; yields a ws:// URL to it.

    On the way out, waits for every handler to finish and re-raises the first failure (an
    assertion in a handler fails the test).
    """
    tasks: list[asyncio.Task[Any]] = []
    errors: list[BaseException] = []

    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        try:
            await handler(reader, writer)
        except Exception as exc:
            errors.append(exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve_one, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()
        if tasks:
            await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    if errors:
        raise errors[0]


def accept_for(request_head: bytes) -> bytes:
    match = re.search(rb"\r\nSec-WebSocket-Key: *(\S+)\r\n", request_head, re.IGNORECASE)
    assert match is not None, request_head
    return base64.b64encode(hashlib.sha1(match.group(1) + GUID).digest())


def upgrade_reply(request_head: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_for(request_head) + b"\r\n\r\n"
    )


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, first: int | None = None
) -> bytes:
    """A server frame (unmasked); ``first`` overrides the whole first byte."""
    if first is None:
        first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        header = bytes((first, n))
    elif n < 65536:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + payload


def masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """One frame from the client: opcode, FIN and unmasked payload (it must be masked)."""
    first, second = await reader.readexactly(2)
    assert second & 0x80, "client frames must be masked"
    assert not first & 0x70
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4)
    data = await reader.readexactly(length)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return first & 0x0F, bool(first & 0x80), payload


async def accept_upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    writer.write(upgrade_reply(head))
    await writer.drain()
    return head


async def read_until_eof(reader: asyncio.StreamReader) -> bytes:
    with contextlib.suppress(ConnectionResetError):
        return await reader.read()
    return b""


# -- against the websockets server ------------------------------------------------------------


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def test_echo_of_binary_and_text_in_order() -> None:
    rng = random.Random(6455)
    sizes = [0, 1, 125, 126, 127, 65535, 65536, 200000]
    binaries = [rng.randbytes(n) for n in sizes]
    binaries += [rng.randbytes(rng.randrange(0, 3000)) for _ in range(100 - len(binaries))]
    texts = ["", "é", "héllo wörld ⟦c17⟧ 🎉", "x" * 125, "x" * 126, "ü" * 40000, "漢" * 70000]
    alphabet = "abcdefghijklmnopqrstuvwxyz äöü ⟦⟧ 🎉 \u200b"
    texts += [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 300)))
        for _ in range(100 - len(texts))
    ]
    sent: list[bytes | str] = [m for pair in zip(binaries, texts, strict=True) for m in pair]

    recorder = Recorder()
    async with ws_server(echo) as url:
        ws = await recorder.connect(url)
        assert ws.open
        assert ws.close_code is None
        for message in sent:
            assert ws.send(message)
        received = await recorder.wait_messages(len(sent))
        await ws.close()
    assert received == sent
    assert [type(m) for m in received] == [type(m) for m in sent]
    assert await recorder.wait_closed() == (1000, "")


async def test_a_burst_of_1000_small_messages_arrives_in_order() -> None:
    async def burst(ws: ServerConnection) -> None:
        for i in range(1000):
            await ws.send(f"message {i}")
        await ws.wait_closed()

    recorder = Recorder()
    async with ws_server(burst) as url:
        ws = await recorder.connect(url)
        received = await recorder.wait_messages(1000)
        await ws.close()
    assert received == [f"message {i}" for i in range(1000)]


async def test_fragmented_messages_from_the_server_are_assembled() -> None:
    async def fragments(ws: ServerConnection) -> None:
        await ws.send(["Hel", "lo ", "wörld"])
        await ws.send([b"\x00\x01", b"\x02", b"\x03" * 70000])
        await ws.send("whole")
        await ws.wait_closed()

    recorder = Recorder()
    async with ws_server(fragments) as url:
        ws = await recorder.connect(url)
        received = await recorder.wait_messages(3)
        await ws.close()
    assert received == ["Hello wörld", b"\x00\x01\x02" + b"\x03" * 70000, "whole"]


async def test_a_server_ping_is_answered() -> None:
    latencies: list[float] = []

    async def pinger(ws: ServerConnection) -> None:
        pong = await ws.ping(b"are you there")
        latencies.append(await asyncio.wait_for(pong, TIMEOUT))
        await ws.send("pong seen")
        await ws.wait_closed()

    recorder = Recorder()
    async with ws_server(pinger) as url:
        ws = await recorder.connect(url)
        assert await recorder.wait_messages(1) == ["pong seen"]
        await ws.close()
    assert len(latencies) == 1


async def test_a_server_initiated_close_reaches_on_close() -> None:
    server_saw: list[int | None] = []

    async def closer(ws: ServerConnection) -> None:
        await ws.send("goodbye")
        await ws.close(4403, "forbidden room ⛔")
        server_saw.append(ws.close_code)

    recorder = Recorder()
    async with ws_server(closer) as url:
        ws = await recorder.connect(url)
        assert await recorder.wait_closed() == (4403, "forbidden room ⛔")
        assert recorder.messages == ["goodbye"]
        assert not ws.open
        assert ws.close_code == 4403
        assert ws.close_reason == "forbidden room ⛔"
        assert ws.send("too late") is False
        assert ws.send(b"too late") is False
        await ws.close()  # nothing left to do but let the transport go
    assert recorder.closes == [(4403, "forbidden room ⛔")]
    assert server_saw == [4403]  # our echo completed the server's closing handshake


async def test_client_close_gets_the_echo_and_on_close_is_called_once() -> None:
    server_saw: list[tuple[int | None, str | None]] = []

    async def waiter(ws: ServerConnection) -> None:
        await ws.wait_closed()
        server_saw.append((ws.close_code, ws.close_reason))

    recorder = Recorder()
    async with ws_server(waiter) as url:
        ws = await recorder.connect(url)
        await asyncio.gather(ws.close(1000, "done"), ws.close())
        assert ws.close_code == 1000
        assert not ws.open
        await ws.close()
        assert ws.send("after") is False
    assert recorder.closes == [(1000, "done")]
    assert server_saw == [(1000, "done")]


async def test_close_rejects_a_bad_code_or_a_long_reason() -> None:
    async def hold(ws: ServerConnection) -> None:
        await ws.wait_closed()

    recorder = Recorder()
    async with ws_server(hold) as url:
        ws = await recorder.connect(url)
        with pytest.raises(ValueError, match="close code"):
            await ws.close(1005)
        with pytest.raises(ValueError, match="123 bytes"):
            await ws.close(1000, "é" * 62)
        assert ws.open
        await ws.close(4000, "é" * 61)
    assert recorder.closes == [(4000, "é" * 61)]


async def test_a_non_101_answer_raises_handshake_rejected() -> None:
    def forbid(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(HTTPStatus.FORBIDDEN, "nope\n")

    recorder = Recorder()
    async with ws_server(echo, process_request=forbid) as url:
        with pytest.raises(HandshakeRejected) as caught:
            await recorder.connect(url)
    assert caught.value.status == 403
    assert caught.value.body == b"nope\n"
    assert recorder.messages == []
    assert recorder.closes == []


async def test_a_message_over_max_size_fails_with_1009() -> None:
    async def big(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # the client may be gone already
            await ws.send(b"x" * 1000)
            await ws.send(b"y" * 1001)
            await ws.send(b"never delivered")
        await ws.wait_closed()

    recorder = Recorder()
    async with ws_server(big) as url:
        ws = await recorder.connect(url, max_size=1000)
        code, _ = await recorder.wait_closed()
        await ws.close()
    assert code == 1009
    assert ws.close_code == 1009
    assert recorder.messages == [b"x" * 1000]


async def test_an_exception_in_on_message_does_not_stop_later_messages() -> None:
    async def sender(ws: ServerConnection) -> None:
        for message in ("a", "boom", "b", "c"):
            await ws.send(message)
        await ws.wait_closed()

    recorder = Recorder()
    received: list[bytes | str] = []
    done = asyncio.Event()

    def on_message(message: bytes | str) -> None:
        received.append(message)
        if message == "c":
            done.set()
        if message == "boom":
            raise RuntimeError("consumer failed")

    reports: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    try:
        async with ws_server(sender) as url:
            ws = await LightWebSocket.connect(
                url, on_message=on_message, on_close=recorder.on_close, open_timeout=TIMEOUT
            )
            await asyncio.wait_for(done.wait(), TIMEOUT)
            await ws.close()
    finally:
        loop.set_exception_handler(previous)
    assert received == ["a", "boom", "b", "c"]
    assert len(reports) == 1
    assert reports[0]["message"] == "light_ws on_message failed"
    assert isinstance(reports[0]["exception"], RuntimeError)
    assert recorder.closes == [(1000, "")]


# -- against raw TCP servers ------------------------------------------------------------------


async def test_the_upgrade_request() -> None:
    heads: list[bytes] = []
    client_frames: list[tuple[int, bool, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await accept_upgrade(reader, writer))
        client_frames.append(await read_client_frame(reader))
        writer.write(frame(0x8, close_payload(1000)))
        assert await read_until_eof(reader) == b""

    recorder = Recorder()
    async with raw_server(handler) as url:
        ws = await recorder.connect(url + "room/7?token=a%20b&x=1")
        await ws.close()
    port = url.rsplit(":", 1)[1].rstrip("/")
    lines = heads[0].decode("ascii").split("\r\n")
    assert lines[0] == "GET /room/7?token=a%20b&x=1 HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert headers["Host"] == f"127.0.0.1:{port}"
    assert headers["Upgrade"] == "websocket"
    assert headers["Connection"] == "Upgrade"
    assert headers["Sec-WebSocket-Version"] == "13"
    assert len(base64.b64decode(headers["Sec-WebSocket-Key"], validate=True)) == 16
    assert not any(name.lower().startswith("sec-websocket-ext") for name in headers)
    assert client_frames == [(0x8, True, close_payload(1000))]
    assert ws.close_code == 1000


async def test_only_ws_urls() -> None:
    recorder = Recorder()
    for url in ("wss://127.0.0.1/", "http://127.0.0.1/", "127.0.0.1:80"):
        with pytest.raises(ValueError):
            await recorder.connect(url)


async def test_a_raw_403_with_its_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nnot you\n")

    recorder = Recorder()
    async with raw_server(handler) as url:
        with pytest.raises(HandshakeRejected) as caught:
            await recorder.connect(url)
    assert caught.value.status == 403
    assert caught.value.body == b"not you\n"


async def test_a_rejection_whose_body_never_comes_does_not_hang() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5000\r\n\r\nbusy")
        assert await read_until_eof(reader) == b""  # the client hangs up, not us

    recorder = Recorder()
    async with raw_server(handler) as url:
        with pytest.raises(HandshakeRejected) as caught:
            await asyncio.wait_for(recorder.connect(url), TIMEOUT)
    assert caught.value.status == 503
    assert caught.value.body == b"busy"


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: d3JvbmcgYWNjZXB0IGtleSE=\r\n\r\n",
            id="wrong-accept",
        ),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n",
            id="no-upgrade-header",
        ),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Accept: {accept}\r\n\r\n",
            id="connection-not-upgrade",
        ),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            id="unrequested-extension",
        ),
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", id="not-http"),
        pytest.param(b"", id="closed-without-reply"),
    ],
)
async def test_a_bad_handshake_reply_raises_protocol_error(reply: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        writer.write(reply.replace(b"{accept}", accept_for(head)))
        if reply:
            await read_until_eof(reader)

    recorder = Recorder()
    async with raw_server(handler) as url:
        with pytest.raises(LightProtocolError):
            await recorder.connect(url)
    assert recorder.closes == []


async def test_upgrade_headers_are_case_insensitive() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, UPGRADE\r\n"
            b"sec-websocket-accept: " + accept_for(head) + b"\r\n\r\n" + frame(0x1, b"hi")
        )
        await read_client_frame(reader)
        writer.write(frame(0x8, close_payload(1000)))
        await read_until_eof(reader)

    recorder = Recorder()
    async with raw_server(handler) as url:
        ws = await recorder.connect(url)
        assert await recorder.wait_messages(1) == ["hi"]
        await ws.close()
    assert ws.close_code == 1000


BAD = b"\x00" * 101
MALFORMED = [
    pytest.param(masked_frame(0x1, b"hello"), 1002, id="masked"),
    pytest.param(frame(0, b"hello", first=0xC1), 1002, id="rsv1"),
    pytest.param(frame(0, b"hello", first=0xA1), 1002, id="rsv2"),
    pytest.param(frame(0, b"hello", first=0x92), 1002, id="rsv3"),
    pytest.param(frame(0x3, b"x"), 1002, id="opcode-3"),
    pytest.param(frame(0xB), 1002, id="opcode-11"),
    pytest.param(frame(0x9, b"p" * 126), 1002, id="long-ping"),
    pytest.param(frame(0x9, b"p", fin=False), 1002, id="fragmented-ping"),
    pytest.param(frame(0x0, b"orphan"), 1002, id="continuation-first"),
    pytest.param(frame(0x1, b"a", fin=False) + frame(0x1, b"b"), 1002, id="text-inside-text"),
    pytest.param(b"\x82\x7f\x80" + b"\x00" * 7, 1002, id="length-top-bit"),
    pytest.param(frame(0x8, b"\x03"), 1002, id="close-one-byte"),
    pytest.param(frame(0x8, close_payload(1005)), 1002, id="close-code-1005"),
    pytest.param(frame(0x8, close_payload(2000)), 1002, id="close-code-2000"),
    pytest.param(frame(0x1, b"\xc3\x28"), 1007, id="bad-utf8"),
    pytest.param(frame(0x1, b"\xed\xa0\x80"), 1007, id="utf8-surrogate"),
    pytest.param(
        frame(0x1, b"ok \xc3", fin=False) + frame(0x0, b"\x28"), 1007, id="bad-utf8-fragmented"
    ),
    pytest.param(frame(0x8, b"\x03\xe8\xff"), 1007, id="bad-utf8-close-reason"),
    pytest.param(frame(0x2, BAD), 1009, id="over-max-size"),
    pytest.param(
        frame(0x2, BAD[:60], fin=False) + frame(0x0, BAD[:41]), 1009, id="over-max-size-fragmented"
    ),
    pytest.param(frame(0x2, b"x" * 70000), 1009, id="over-max-size-64-bit-length"),
]


@pytest.mark.parametrize(("bad", "code"), MALFORMED)
async def test_a_broken_frame_fails_the_connection(bad: bytes, code: int) -> None:
    client_frames: list[tuple[int, bool, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_upgrade(reader, writer)
        writer.write(frame(0x1, b"before") + bad + frame(0x1, b"after"))
        client_frames.append(await read_client_frame(reader))
        assert await read_until_eof(reader) == b""

    recorder = Recorder()
    async with raw_server(handler) as url:
        ws = await recorder.connect(url, max_size=100)
        closed_with, _ = await recorder.wait_closed()
        assert ws.send("anything") is False
        await ws.close()
    assert closed_with == code
    assert ws.close_code == code
    assert recorder.messages == ["before"]
    assert recorder.closes[0][0] == code
    assert client_frames == [(0x8, True, close_payload(code))]


async def test_a_dropped_connection_closes_with_1006() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_upgrade(reader, writer)
        writer.write(frame(0x1, b"last words") + frame(0x2, b"partial frame")[:5])
        await writer.drain()
        # Returning closes the socket without a close frame.

    recorder = Recorder()
    async with raw_server(handler) as url:
        ws = await recorder.connect(url)
        assert await recorder.wait_closed() == (1006, "")
        assert ws.close_code == 1006
        assert ws.close_reason == ""
        assert ws.send("nobody there") is False
        await ws.close()
    assert recorder.messages == ["last words"]
    assert recorder.closes == [(1006, "")]


async def test_close_without_an_answer_ends_with_1006_after_the_timeout() -> None:
    client_frames: list[tuple[int, bool, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_upgrade(reader, writer)
        client_frames.append(await read_client_frame(reader))
        assert await read_until_eof(reader) == b""  # and nothing after the close frame

    recorder = Recorder()
    async with raw_server(handler) as url:
        ws = await recorder.connect(url)
        await ws.close(4000, "bye", timeout=0.2)
        assert ws.close_code == 1006
        assert ws.send("after close") is False
    assert client_frames == [(0x8, True, close_payload(4000, "bye"))]
    assert recorder.closes == [(1006, "")]


async def test_frames_in_the_same_chunk_as_the_handshake_reply() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        writer.write(upgrade_reply(head) + frame(0x1, "früh".encode()) + frame(0x2, b"\x01" * 300))
        await read_client_frame(reader)
        writer.write(frame(0x8, close_payload(1000)))
        await read_until_eof(reader)

    recorder = Recorder()
    async with raw_server(handler) as url:
        ws = await recorder.connect(url)
        assert await recorder.wait_messages(2) == ["früh", b"\x01" * 300]
        await ws.close()
    assert recorder.closes == [(1000, "")]


async def test_fragments_with_a_ping_between_and_a_character_split_across_them() -> None:
    client_frames: list[tuple[int, bool, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_upgrade(reader, writer)
        text = "a⟦b".encode()  # "⟦" is three bytes: split it over two frames
        writer.write(
            frame(0x1, text[:2], fin=False)
            + frame(0x9, b"mid-message ping")
            + frame(0x0, text[2:3], fin=False)
            + frame(0x0, b"", fin=False)
            + frame(0x0, text[3:])
            + frame(0xA, b"unsolicited pong")
            + frame(0x2, b"next")
        )
        client_frames.append(await read_client_frame(reader))
        client_frames.append(await read_client_frame(reader))
        writer.write(frame(0x8, close_payload(1000)))
        await read_until_eof(reader)

    recorder = Recorder()
    async with raw_server(handler) as url:
        ws = await recorder.connect(url)
        assert await recorder.wait_messages(2) == ["a⟦b", b"next"]
        await ws.close()
    assert client_frames == [(0xA, True, b"mid-message ping"), (0x8, True, close_payload(1000))]


async def test_a_stream_split_byte_by_byte_is_parsed() -> None:
    client_frames: list[tuple[int, bool, bytes]] = []
    big = random.Random(1).randbytes(70000)

    async def dribble(writer: asyncio.StreamWriter, data: bytes, step: int = 1) -> None:
        for i in range(0, len(data), step):
            writer.write(data[i : i + step])
            await writer.drain()
            # drain() returns at once while the buffer is empty, so yield to the loop (not a
            # timed wait). Twice: in the next iteration this task wakes up before the client's
            # read callback runs, and must not write the next piece before it.
            for _ in range(2):
                await asyncio.sleep(0)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        await dribble(writer, upgrade_reply(head))
        await dribble(
            writer,
            frame(0x1, "héllo 🎉".encode())
            + frame(0x2)
            + frame(0x2, bytes(range(200)))
            + frame(0x9, b"ping!")
            + frame(0x1, b"frag", fin=False)
            + frame(0x0, b"mented"),
        )
        big_frame = frame(0x2, big)
        await dribble(writer, big_frame[:10])
        await dribble(writer, big_frame[10:], step=4093)
        await dribble(writer, frame(0x8, close_payload(1001, "going")))
        client_frames.append(await read_client_frame(reader))
        client_frames.append(await read_client_frame(reader))
        await read_until_eof(reader)

    recorder = Recorder()
    async with raw_server(handler) as url:
        ws = await recorder.connect(url)
        assert await recorder.wait_closed() == (1001, "going")
        await ws.close()
    assert recorder.messages == ["héllo 🎉", b"", bytes(range(200)), "fragmented", big]
    assert client_frames == [(0xA, True, b"ping!"), (0x8, True, close_payload(1001))]


async def test_connect_to_a_closed_port_raises_oserror() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recorder = Recorder()
    with pytest.raises(OSError):
        await recorder.connect(f"ws://127.0.0.1:{port}/")
    assert recorder.closes == []


async def test_open_timeout_against_a_server_that_never_answers() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        assert await read_until_eof(reader) == b""

    recorder = Recorder()
    async with raw_server(silent) as url:
        with pytest.raises(TimeoutError):
            await recorder.connect(url, open_timeout=0.2)
    assert recorder.closes == []
