"""uvicorn's sans-I/O websocket protocol, plus a direct path for the collaboration hub.

The ASGI websocket interface costs a task switch and several layers of wrappers per message in
each direction, and uvicorn pauses and resumes reading the socket (two ``epoll_ctl`` calls) for
every message it queues. For a collaboration server, whose work is fanning small updates out to
many sockets, that overhead was most of the CPU (see README "Performance").

:class:`DirectWebSocketProtocol` is uvicorn's ``websockets-sansio`` protocol with one addition: it
offers the application a :class:`DirectSocket` in the ASGI scope's ``extensions``
(:data:`~server.hub.wire.DIRECT_EXTENSION`), through which it may

- write a message synchronously — a pre-built frame shared by every recipient of a broadcast, or
  the payload through the connection's own encoder when it negotiated compression — as long as
  the transport's buffer is below its high-water mark (otherwise the caller queues and awaits the
  ordinary ASGI ``send``, which waits for the buffer to drain), and
- receive messages through a callback, called as frames are parsed, instead of the ASGI queue.

Everything else — the handshake, pings, closing, disconnect events, the ASGI ``send`` — is
uvicorn's. An application that ignores the extension sees a standard ASGI server, and the hub
runs unchanged (only slower) on any other ASGI server.

It relies on uvicorn's implementation: the attributes ``conn`` (websockets' ``ServerProtocol``),
``transport``, ``writable``, ``close_sent``, ``disconnected``, ``frames``, ``curr_msg_data_type``,
``queue``, ``loop``, ``handshake_complete`` and ``scope``; the handshake's ``request`` and
``response`` being instance attributes unused after the handshake; and the hooks ``run_asgi``,
``send``, ``send_receive_event_to_app`` and ``connection_lost``. Hence the narrow uvicorn version
range in ``pyproject.toml``. ``tests/unit/test_dependency_guards.py`` checks each of these on the
installed uvicorn (driving a handshake and messages through a fake transport) and names what
broke; ``tests/e2e/test_transport.py`` runs the whole path in a real server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from server.hub.wire import DIRECT_EXTENSION, Receiver, WireMessage

logger = logging.getLogger(__name__)

# How long a dropped connection may take to read what was buffered before it is aborted
# (the default of ``PROMPT_STUDIO_DROP_GRACE_SECONDS``).
DROP_GRACE_SECONDS = 5.0
# What a socket may send before the hub takes its messages (admission and join not done):
# the defaults of ``PROMPT_STUDIO_PREAUTH_MAX_FRAMES`` / ``PROMPT_STUDIO_PREAUTH_MAX_BYTES``.
PREAUTH_MAX_FRAMES = 32
PREAUTH_MAX_BYTES = 2 * 1024 * 1024


class DirectSocket:
    """The direct path into one websocket connection (see the module docstring)."""

    __slots__ = ("_abort", "_protocol", "receiver")

    def __init__(self, protocol: DirectWebSocketProtocol) -> None:
        self._protocol = protocol
        self.receiver: Receiver | None = None
        self._abort: asyncio.TimerHandle | None = None

    def write(self, message: WireMessage) -> bool:
        """Write ``message`` now if the connection is open and its buffer has room."""
        protocol = self._protocol
        conn = protocol.conn
        if (
            protocol.close_sent
            or protocol.disconnected
            or not protocol.writable.is_set()
            or conn.state is not State.OPEN
        ):
            return False
        transport = protocol.transport
        if transport.is_closing():
            return False
        if conn.extensions:
            # Compression keeps state per connection: the shared frame cannot be used.
            if message.is_binary:
                conn.send_binary(message.payload)
            else:
                conn.send_text(message.payload)
            transport.write(b"".join(conn.data_to_send()))
        else:
            transport.write(message.frame)
        return True

    def drop(self, code: int, reason: str) -> None:
        """Close now: the close frame behind what is buffered, then the TCP connection.

        A client that has stopped reading never takes the buffered data; it is aborted after
        the protocol's ``drop_grace_seconds`` so its socket and buffer are freed. One that does
        read it ends normally before then, and the abort is cancelled (an abort of a transport
        already closed fails inside asyncio).
        """
        self.receiver = None
        protocol = self._protocol
        if protocol.disconnected:
            return
        transport = protocol.transport
        if not protocol.close_sent:
            conn = protocol.conn
            if conn.state is State.OPEN:
                conn.send_close(code, reason)
                transport.write(b"".join(conn.data_to_send()))
            protocol.close_sent = True
            protocol.queue.put_nowait(
                {"type": "websocket.disconnect", "code": code, "reason": reason}
            )
        transport.close()
        if self._abort is None:
            self._abort = protocol.loop.call_later(protocol.drop_grace_seconds, self._abort_now)

    def _abort_now(self) -> None:
        self._abort = None
        if not self._protocol.disconnected:
            self._protocol.transport.abort()

    def cancel_abort(self) -> None:
        """The connection is gone: the abort scheduled by :meth:`drop` has nothing to do."""
        if self._abort is not None:
            self._abort.cancel()
            self._abort = None

    def set_receiver(self, receiver: Receiver | None) -> None:
        """Deliver messages parsed from now on to ``receiver`` (None: back to ASGI receive).

        Messages already queued for ASGI ``receive`` stay there; the application drains them
        first (they were received earlier), so order is kept.
        """
        self.receiver = receiver


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websocket protocol offering a :class:`DirectSocket` to the app."""

    drop_grace_seconds: ClassVar[float] = DROP_GRACE_SECONDS
    preauth_max_frames: ClassVar[int] = PREAUTH_MAX_FRAMES
    preauth_max_bytes: ClassVar[int] = PREAUTH_MAX_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direct = DirectSocket(self)
        # Frames and bytes received while no receiver is set (before the socket is admitted).
        self.preauth_frames = 0
        self.preauth_bytes = 0

    def connection_lost(self, exc: Exception | None) -> None:
        """The TCP connection ended: cancel a pending abort, then uvicorn's clean-up."""
        self.direct.cancel_abort()
        super().connection_lost(exc)

    async def run_asgi(self) -> None:
        """Run the application with the direct socket in the scope's extensions."""
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[DIRECT_EXTENSION] = self.direct
        await super().run_asgi()

    async def send(self, message: Any) -> None:
        """ASGI send; once the handshake is answered its request and response are let go (an
        idle connection should hold as little as possible)."""
        await super().send(message)
        if self.handshake_complete:
            self.__dict__.pop("request", None)
            self.__dict__.pop("response", None)

    def send_receive_event_to_app(self) -> None:
        """Hand a complete message to the receiver callback, or to ASGI receive without one."""
        receiver = self.direct.receiver
        if receiver is None and not self.close_sent and not self._within_preauth_limit():
            self.frames = []
            self.direct.drop(1008, "too much sent before the socket was admitted")
            return
        if receiver is None or self.close_sent:
            super().send_receive_event_to_app()
            return
        frames, self.frames = self.frames, []
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        message: bytes | str
        if self.curr_msg_data_type == "text":
            try:
                message = bytes(data).decode()
            except UnicodeDecodeError:
                self.direct.drop(1007, "invalid UTF-8 in a text frame")
                return
        else:
            message = bytes(data)
        try:
            receiver(message)
        except Exception:
            # The receiver handles bad input itself; this is a bug. Only this connection ends.
            logger.exception("websocket message handler failed; closing the connection")
            self.direct.drop(1011, "internal server error")

    def _within_preauth_limit(self) -> bool:
        """Count the message being handed over before admission; False past either bound.

        Until the hub sets a receiver the messages wait in uvicorn's queue, unread: an
        unauthenticated client must not fill it (each message may be a full-size frame).
        """
        self.preauth_frames += 1
        self.preauth_bytes += sum(len(frame) for frame in self.frames)
        return (
            self.preauth_frames <= self.preauth_max_frames
            and self.preauth_bytes <= self.preauth_max_bytes
        )


def direct_websocket_protocol(
    drop_grace_seconds: float,
    preauth_max_frames: int = PREAUTH_MAX_FRAMES,
    preauth_max_bytes: int = PREAUTH_MAX_BYTES,
) -> type[DirectWebSocketProtocol]:
    """:class:`DirectWebSocketProtocol` aborting dropped clients after ``drop_grace_seconds``
    and closing (1008) a socket that sends more than ``preauth_max_frames`` messages or
    ``preauth_max_bytes`` bytes before it is admitted."""

    class Configured(DirectWebSocketProtocol):
        pass

    Configured.drop_grace_seconds = drop_grace_seconds
    Configured.preauth_max_frames = preauth_max_frames
    Configured.preauth_max_bytes = preauth_max_bytes
    return Configured
