"""A minimal RFC 6455 websocket client on a bare :class:`asyncio.Protocol`, for the load generator.

At ~20,000 received messages per second, most of the generator's CPU went into the
``websockets`` library rather than into our own bookkeeping: every message is assembled, put
on the connection's queue and picked up by the reading task, so each one costs a queue round
trip, a task switch and several layers of Python calls. This client does the minimum instead:
``data_received`` parses the frames out of the chunk it was given (bytes and an offset,
payloads sliced once) and hands each message to a synchronous ``on_message`` callback on the
spot, with no queue and no task.

Scope, on purpose: ``ws://`` only, no extensions (no compression), no subprotocols, no proxy,
no keepalive pings of its own. It still checks what a client must check (the handshake reply,
unmasked frames, RSV bits, opcodes, control frame rules, UTF-8 text, the message size limit)
and fails the connection with the RFC's close code when the server breaks a rule.

Callbacks run inside the event loop's I/O callback: they must not block. Frames that arrive
in the same chunk as the handshake reply are delivered at once, so ``on_message`` (and, if the
server closes straight away, ``on_close``) may run before :meth:`LightWebSocket.connect`
returns. If ``connect`` raises, no callback runs afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import struct
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["HandshakeRejected", "LightProtocolError", "LightWebSocket"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEAD = 16 * 1024
"""A reply head longer than this without its blank line is not a websocket server's."""
_MAX_REJECT_BODY = 1024
_REJECT_BODY_WAIT = 0.5
"""How long a rejected handshake waits for the body of the reply (bounded by open_timeout)."""

# States. Frames are parsed while the state is _OPEN or _CLOSING (i.e. <= _CLOSING).
_OPEN = 0
_CLOSING = 1
"""We sent a close frame and wait for the server's."""
_CONNECTING = 2
_REJECTED = 3
"""The server answered the upgrade with another status; collecting the body."""
_CLOSED = 4

_OP_CONT = 0x0
_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8
_OP_PING = 0x9
_OP_PONG = 0xA

# Close codes a peer may put on the wire (RFC 6455 7.4.1 and the IANA registry).
_WIRE_CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

# Masking only has to be unpredictable to intermediaries; a private generator is much cheaper
# than os.urandom per frame and leaves the global `random` state (seeded runs) untouched.
_mask_bits = random.Random(os.urandom(16)).getrandbits
_pack_short = struct.Struct("!BBI").pack
_pack_medium = struct.Struct("!BBHI").pack
_pack_long = struct.Struct("!BBQI").pack


class HandshakeRejected(Exception):
    """The server answered the upgrade with a non-101 status."""

    def __init__(self, status: int, body: bytes) -> None:
        """Record the HTTP ``status`` and up to the first KiB of the response ``body``."""
        super().__init__(f"server rejected the websocket upgrade: HTTP {status}")
        self.status = status
        self.body = body


class LightProtocolError(Exception):
    """The server broke the protocol (bad handshake reply or bad frame)."""


class _Failure(Exception):
    """Internal: fail the connection with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


def _frame(first: int, payload: bytes) -> bytes:
    """One masked client frame: ``first`` is the FIN/opcode byte."""
    n = len(payload)
    mask_int = _mask_bits(32)
    if n < 126:
        header = _pack_short(first, 0x80 | n, mask_int)
    elif n < 65536:
        header = _pack_medium(first, 0xFE, n, mask_int)
    else:
        header = _pack_long(first, 0xFF, n, mask_int)
    if not n:
        return header
    mask = header[-4:]
    # One big-integer XOR masks the whole payload in C, far faster than a loop over bytes.
    masked = (
        int.from_bytes(payload, "little") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    ).to_bytes(n, "little")
    return header + masked


def _close_payload(code: int, reason: str) -> bytes:
    if code not in _WIRE_CLOSE_CODES and not 3000 <= code <= 4999:
        raise ValueError(f"invalid close code {code}")
    encoded = reason.encode("utf-8")
    if len(encoded) > 123:
        raise ValueError("close reason longer than 123 bytes in UTF-8")
    return code.to_bytes(2, "big") + encoded


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status code and the headers (lower-case names, repeated ones joined by ", ")."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise LightProtocolError(f"bad status line in the handshake reply: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise LightProtocolError(f"bad header line in the handshake reply: {line!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return int(parts[1]), headers


def _tokens(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",")}


class _Adapter(asyncio.Protocol):
    """The asyncio side of a :class:`LightWebSocket` (keeps its public surface small)."""

    def __init__(self, ws: LightWebSocket) -> None:
        self._ws = ws

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._ws._connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._ws._data_received(data)

    def eof_received(self) -> bool | None:
        return None  # let the transport close itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._ws._connection_lost(exc)

    # asyncio buffers what we write; the generator's send rate is bounded, so no backpressure.
    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


class LightWebSocket:
    """One client websocket connection; messages arrive through the ``on_message`` callback."""

    close_code: int | None
    """The code the server closed with (or the one we failed with), 1006 if the connection
    dropped without a close frame, None while open."""
    close_reason: str

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[bytes | str], None],
        on_close: Callable[[int, str], None],
        max_size: int | None,
        request: bytes,
        accept: str,
    ) -> None:
        """Internal: use :meth:`connect`."""
        self.close_code = None
        self.close_reason = ""
        self._loop = loop
        self._on_message = on_message
        self._on_close = on_close
        self._max_size = max_size
        self._request = request
        self._accept = accept
        self._state = _CONNECTING
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._need = 2
        """Bytes the buffer must hold before parsing can make progress."""
        self._frag_opcode = 0
        """Opcode of the fragmented message being assembled (0: none)."""
        self._frag_parts: list[bytes] = []
        self._frag_size = 0
        self._close_sent = False
        self._reported = False
        self._handshake: asyncio.Future[None] = loop.create_future()
        self._handshake_error: BaseException | None = None
        self._reject_status = 0
        self._reject_want = 0
        self._reject_done = asyncio.Event()
        self._closed = asyncio.Event()
        self._lost = asyncio.Event()

    @property
    def open(self) -> bool:
        """True from the handshake until a close frame is sent or received, or the link drops."""
        return self._state == _OPEN

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        on_message: Callable[[bytes | str], None],
        on_close: Callable[[int, str], None],
        open_timeout: float,
        max_size: int | None = None,
    ) -> LightWebSocket:
        """Open a websocket to ``url`` (``ws://`` only) and return it once the handshake is done.

        ``on_message`` gets every message (``str`` for text, ``bytes`` for binary) in order;
        ``on_close(code, reason)`` is called exactly once when the connection ends.
        ``open_timeout`` bounds the TCP connect plus the handshake (``TimeoutError``).
        ``max_size`` limits the size of a message in bytes (the connection fails with 1009).

        Raises ``ValueError`` (bad URL), ``OSError`` (cannot connect), ``TimeoutError``,
        :class:`HandshakeRejected` (non-101 reply) or :class:`LightProtocolError`.
        """
        parts = urlsplit(url)
        if parts.scheme.lower() != "ws":
            raise ValueError(f"only ws:// URLs are supported, not {url!r}")
        host = parts.hostname
        if not host:
            raise ValueError(f"no host in {url!r}")
        port = parts.port or 80
        host_header = f"[{host}]" if ":" in host else host
        if parts.port is not None and parts.port != 80:
            host_header = f"{host_header}:{parts.port}"
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        accept = base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode()
        request = (
            f"GET {target} HTTP/1.1\r\n"
            f"Host: {host_header}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        ).encode("ascii")  # UnicodeEncodeError is a ValueError

        loop = asyncio.get_running_loop()
        ws = cls(loop, on_message, on_close, max_size, request, accept)
        deadline = loop.time() + open_timeout
        try:
            async with asyncio.timeout_at(deadline):
                await loop.create_connection(lambda: _Adapter(ws), host, port)
                await ws._handshake
            if ws._handshake_error is not None:
                raise ws._handshake_error
            if ws._state == _REJECTED:
                wait = min(_REJECT_BODY_WAIT, deadline - loop.time())
                if wait > 0:
                    try:
                        async with asyncio.timeout(wait):
                            await ws._reject_done.wait()
                    except TimeoutError:
                        pass  # keep whatever part of the body arrived
                body = bytes(ws._buf[:_MAX_REJECT_BODY])
                raise HandshakeRejected(ws._reject_status, body)
        except BaseException as exc:
            await ws._discard(wait=not isinstance(exc, asyncio.CancelledError))
            raise
        return ws

    async def _discard(self, *, wait: bool) -> None:
        """After a failed connect: drop the connection and silence every callback."""
        self._state = _CLOSED
        self._reported = True
        transport = self._transport
        if transport is None:
            return
        transport.abort()
        if wait and not self._lost.is_set():
            # abort() schedules connection_lost for the next loop iteration.
            try:
                async with asyncio.timeout(1.0):
                    await self._lost.wait()
            except TimeoutError:
                pass

    def _connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        transport.write(self._request)

    def _handshake_data(self, data: bytes) -> None:
        buf = self._buf
        start = max(len(buf) - 3, 0)
        buf += data
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            if len(buf) > _MAX_HEAD:
                self._handshake_failed(LightProtocolError("handshake reply head too long"))
            return
        head = bytes(buf[:end])
        del buf[: end + 4]
        try:
            status, headers = _parse_head(head)
            if status != 101:
                self._reject(status, headers)
                return
            if "websocket" not in _tokens(headers.get("upgrade", "")):
                raise LightProtocolError("handshake reply without Upgrade: websocket")
            if "upgrade" not in _tokens(headers.get("connection", "")):
                raise LightProtocolError("handshake reply without Connection: Upgrade")
            if headers.get("sec-websocket-accept") != self._accept:
                raise LightProtocolError("wrong Sec-WebSocket-Accept in the handshake reply")
            if "sec-websocket-extensions" in headers:
                raise LightProtocolError("the server chose an extension we did not offer")
            if "sec-websocket-protocol" in headers:
                raise LightProtocolError("the server chose a subprotocol we did not offer")
        except LightProtocolError as exc:
            self._handshake_failed(exc)
            return
        self._state = _OPEN
        self._handshake.set_result(None)
        if buf:
            # Frames that came with the reply: parse them like any later chunk.
            rest = bytes(buf)
            buf.clear()
            self._data_received(rest)

    def _reject(self, status: int, headers: dict[str, str]) -> None:
        self._state = _REJECTED
        self._reject_status = status
        length = headers.get("content-length", "")
        want = int(length) if length.isdigit() else _MAX_REJECT_BODY
        self._reject_want = min(want, _MAX_REJECT_BODY)
        if len(self._buf) >= self._reject_want:
            self._reject_done.set()
        self._handshake.set_result(None)

    def _handshake_failed(self, exc: BaseException) -> None:
        self._handshake_error = exc
        self._state = _CLOSED
        self._buf.clear()
        if not self._handshake.done():
            self._handshake.set_result(None)

    # -- receiving -----------------------------------------------------------------------------

    def _data_received(self, data: bytes) -> None:
        if self._state > _CLOSING:
            if self._state == _CONNECTING:
                self._handshake_data(data)
            elif self._state == _REJECTED:
                self._buf += data
                if len(self._buf) >= self._reject_want:
                    self._reject_done.set()
            return
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return  # the pending frame is still incomplete: do not parse its header again
            # One more copy, only when a frame was split across chunks. (Parsing a memoryview
            # of the buffer would pin it: a traceback kept by an exception handler holds the
            # payload slices, and the next resize would raise BufferError.)
            data = bytes(buf)
            buf.clear()
        # Payload slices of ``data`` are bytes, handed on without another copy.
        pos = self._parse(data)
        if pos < len(data) and self._state != _CLOSED:
            buf += memoryview(data)[pos:]

    def _parse(self, data: bytes) -> int:
        """Handle every complete frame in ``data``; return the offset of the first one left."""
        end = len(data)
        pos = 0
        try:
            while self._state <= _CLOSING:
                if end - pos < 2:
                    self._need = 2
                    break
                first = data[pos]
                second = data[pos + 1]
                opcode = first & 0x0F
                if second & 0x80:
                    raise _Failure(1002, "masked frame from the server")
                if first & 0x70:
                    raise _Failure(1002, "reserved bits set")
                length = second & 0x7F
                if opcode >= _OP_CLOSE:
                    if opcode > _OP_PONG:
                        raise _Failure(1002, f"unknown opcode {opcode}")
                    if length > 125:
                        raise _Failure(1002, "control frame too long")
                    if not first & 0x80:
                        raise _Failure(1002, "fragmented control frame")
                    start = pos + 2
                else:
                    if opcode > _OP_BINARY:
                        raise _Failure(1002, f"unknown opcode {opcode}")
                    if opcode == _OP_CONT:
                        if not self._frag_opcode:
                            raise _Failure(1002, "continuation frame without a message")
                    elif self._frag_opcode:
                        raise _Failure(1002, "new message inside a fragmented one")
                    if length < 126:
                        start = pos + 2
                    elif length == 126:
                        start = pos + 4
                        if start > end:
                            self._need = 4
                            break
                        length = (data[pos + 2] << 8) | data[pos + 3]
                    else:
                        start = pos + 10
                        if start > end:
                            self._need = 10
                            break
                        length = int.from_bytes(data[pos + 2 : start], "big")
                        if length >> 63:
                            raise _Failure(1002, "frame length with the top bit set")
                    # Checked before the payload is buffered, so a huge frame costs nothing.
                    if self._max_size is not None and self._frag_size + length > self._max_size:
                        raise _Failure(1009, f"message over {self._max_size} bytes")
                stop = start + length
                if stop > end:
                    self._need = stop - pos
                    break
                payload = data[start:stop]
                pos = stop
                if opcode == _OP_CONT:
                    self._frag_parts.append(payload)
                    self._frag_size += length
                    if first & 0x80:
                        whole = b"".join(self._frag_parts)
                        opcode = self._frag_opcode
                        self._frag_parts.clear()
                        self._frag_opcode = 0
                        self._frag_size = 0
                        self._deliver(opcode, whole)
                elif opcode < _OP_CLOSE:  # text or binary
                    if first & 0x80:
                        self._deliver(opcode, payload)
                    else:
                        self._frag_opcode = opcode
                        self._frag_parts.append(payload)
                        self._frag_size = length
                elif opcode == _OP_PING:
                    self._write(0x80 | _OP_PONG, payload)
                elif opcode == _OP_CLOSE:
                    self._close_frame(payload)
                # pong: nothing to do, we never ping
        except _Failure as failure:
            self._fail(failure.code, failure.reason)
        return pos

    def _deliver(self, opcode: int, payload: bytes) -> None:
        if opcode == _OP_TEXT:
            try:
                message: bytes | str = str(payload, "utf-8")
            except UnicodeDecodeError:
                raise _Failure(1007, "invalid UTF-8 in a text message") from None
        else:
            message = payload
        try:
            self._on_message(message)
        except Exception as exc:
            # A failing consumer must not lose the frames after this one.
            self._loop.call_exception_handler(
                {"message": "light_ws on_message failed", "exception": exc}
            )

    def _close_frame(self, payload: bytes) -> None:
        if not payload:
            code, reason = 1005, ""
        elif len(payload) == 1:
            raise _Failure(1002, "close frame with a one-byte payload")
        else:
            code = int.from_bytes(payload[:2], "big")
            if code not in _WIRE_CLOSE_CODES and not 3000 <= code <= 4999:
                raise _Failure(1002, f"invalid close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise _Failure(1007, "invalid UTF-8 in the close reason") from None
        if not self._close_sent:
            self._close_sent = True
            self._write(0x80 | _OP_CLOSE, b"" if code == 1005 else payload[:2])
        self._finish(code, reason)

    # -- closing -------------------------------------------------------------------------------

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection: close frame (if still possible), drop the link, report."""
        if self._state == _CLOSED:
            return
        if not self._close_sent:
            self._close_sent = True
            self._write(0x80 | _OP_CLOSE, _close_payload(code, ""))
        self._frag_parts.clear()
        self._finish(code, reason)

    def _finish(self, code: int, reason: str) -> None:
        """Enter the closed state, close the transport and call on_close (once)."""
        self._state = _CLOSED
        self.close_code = code
        self.close_reason = reason
        self._closed.set()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
        if not self._reported:
            self._reported = True
            try:
                self._on_close(code, reason)
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "light_ws on_close failed", "exception": exc}
                )

    def _connection_lost(self, exc: Exception | None) -> None:
        self._lost.set()
        state = self._state
        if state == _CONNECTING:
            self._handshake_failed(
                exc or LightProtocolError("connection closed before the handshake reply")
            )
        elif state == _REJECTED:
            self._reject_done.set()
        elif state <= _CLOSING:
            self._finish(1006, "")
        self._frag_parts.clear()

    def _write(self, first: int, payload: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(_frame(first, payload))

    # -- public --------------------------------------------------------------------------------

    def send(self, data: bytes | str) -> bool:
        """Send one frame (text for ``str``, binary for ``bytes``); False if not open."""
        transport = self._transport
        if self._state != _OPEN or transport is None or transport.is_closing():
            return False
        if isinstance(data, str):
            transport.write(_frame(0x80 | _OP_TEXT, data.encode("utf-8")))
        else:
            transport.write(_frame(0x80 | _OP_BINARY, data))
        return True

    async def close(self, code: int = 1000, reason: str = "", timeout: float = 2.0) -> None:
        """Close the connection: send a close frame and wait for the server's (idempotent).

        Waits up to ``timeout`` seconds for the server's close frame or the connection to
        drop, then closes the transport (aborting it if it does not go within the same time).
        Afterwards :attr:`close_code` is set (1006 if the server never answered) and
        ``on_close`` has been called. Raises ``ValueError`` for an invalid code or a reason
        over 123 bytes in UTF-8.
        """
        loop = self._loop
        deadline = loop.time() + timeout
        if self._state == _OPEN:
            payload = _close_payload(code, reason)
            self._close_sent = True
            self._state = _CLOSING
            self._write(0x80 | _OP_CLOSE, payload)
        if self._state == _CLOSING:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._closed.wait()
            except TimeoutError:
                self._finish(1006, "")
        transport = self._transport
        if transport is None or self._lost.is_set():
            return
        if not transport.is_closing():
            transport.close()
        try:
            async with asyncio.timeout_at(deadline):
                await self._lost.wait()
        except TimeoutError:
            transport.abort()
            # abort() schedules connection_lost for the next loop iteration.
            async with asyncio.timeout(1.0):
                await self._lost.wait()
