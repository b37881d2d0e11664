"""One client's websocket: identity, role, protocol, and an ordered, bounded outgoing queue.

Everything sent to a client goes through :meth:`ClientConnection.send`. On a direct transport
(see :mod:`server.hub.wire`) a message is written at once when nothing is waiting before it;
otherwise it is queued, and a single sender task writes the queue to the socket in order. An
acknowledgement that must wait for a database commit is queued as a :class:`Deferred`, so
messages queued after it (other clients' ops with higher revisions) are never delivered before
it. A client that cannot keep up is closed with 1013 instead of letting its queue grow without
bound."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server.auth import Principal
from server.hub.closing import CloseCode
from server.hub.ratelimit import TokenBucket
from server.hub.traffic import Traffic, json_type, yjs_type
from server.hub.wire import DirectTransport, WireMessage
from storage.models.collaboration import role_at_least

logger = logging.getLogger(__name__)


class WireProtocol(StrEnum):
    """Which protocol a connection speaks (fixed for the connection's lifetime)."""

    YJS = "yjs"
    JSON = "json"


@dataclass(slots=True)
class Deferred:
    """A message whose content is known only once ``future`` resolves (e.g. an ack after commit)."""

    future: asyncio.Future[Any]
    on_result: Callable[[Any], str | bytes | None]
    on_error: Callable[[BaseException], str | bytes | None]


@dataclass(slots=True)
class _Close:
    code: int
    reason: str


Outgoing = str | bytes | WireMessage | Deferred | _Close


def new_awareness_client_id() -> int:
    """A random Yjs-style client id (fits in 53 bits, like Yjs' own)."""
    return secrets.randbits(31) + 1


def dumps(message: dict[str, Any]) -> str:
    """Encode a JSON protocol message compactly (non-ASCII kept as is)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class ClientConnection:
    """A connected client of one room."""

    def __init__(
        self,
        websocket: WebSocket,
        principal: Principal,
        role: str,
        *,
        send_queue_limit: int,
        rate_limit: TokenBucket,
        direct: DirectTransport | None = None,
        traffic: Traffic | None = None,
        connection_id: str | None = None,
    ) -> None:
        self.id = connection_id or uuid.uuid4().hex
        # Where the messages sent to this client alone are counted (broadcasts count in Room).
        self.traffic = traffic if traffic is not None else Traffic()
        self.websocket = websocket
        self.principal = principal
        self.role = role
        self.protocol: WireProtocol | None = None
        self.rate_limit = rate_limit
        # The user's bucket shared by all of their connections (server.hub.limits).
        self.user_rate_limit: TokenBucket | None = None
        self.rate_violations = 0
        # The awareness client id that stands for this connection when it speaks JSON.
        self.awareness_client_id = new_awareness_client_id()
        self.awareness_clock = 0
        self.cursor: dict[str, int] | None = None
        self.direct = direct
        self._limit = send_queue_limit
        # Messages waiting for the sender, created on first use: on a direct transport most
        # connections never queue anything (an idle one should cost as little as possible).
        self._queue: deque[Outgoing] | None = None
        # The task writing the queue, while there is something to write.
        self._sender: asyncio.Task[None] | None = None
        self._closing = False
        self.close_code: int | None = None
        # The code of the client's close frame, when it closed first (for the close log line).
        self.peer_close_code: int | None = None
        # Set when the connection must end even though its socket may never say so (a write
        # stuck on a client that stopped reading, or a bug in the sender); see ``ended``.
        self._ended = False
        self._ended_future: asyncio.Future[None] | None = None

    @property
    def user_id(self) -> str:
        """The connected user's id."""
        return self.principal.user_id

    @property
    def can_edit(self) -> bool:
        """Whether the current role may change the document (checked on every change)."""
        return role_at_least(self.role, "EDITOR")

    @property
    def queued(self) -> int:
        """Messages waiting for the sender (for the operator's counts)."""
        return 0 if self._queue is None else len(self._queue)

    @property
    def sending(self) -> bool:
        """Whether a sender task is writing this connection's queue."""
        return self._sender is not None

    @property
    def is_closing(self) -> bool:
        """True once a close has been requested."""
        return self._closing

    def send(self, message: Outgoing) -> None:
        """Write a message now if possible, else queue it; a full queue means a slow consumer,
        which is closed (1013)."""
        if self._closing:
            return
        if (
            self._sender is None
            and not isinstance(message, Deferred | _Close)
            and self._write_direct(message)
        ):
            return
        self._enqueue(message)

    def _write_direct(self, message: str | bytes | WireMessage) -> bool:
        """Write through the direct transport if there is one and its buffer has room."""
        if self.direct is None:
            return False
        wire = message if isinstance(message, WireMessage) else WireMessage(message)
        return self.direct.write(wire)

    def send_json(self, message: dict[str, Any]) -> None:
        """Queue a JSON protocol message."""
        self.traffic.outbound["json", json_type(message.get("type"))] += 1
        self.send(dumps(message))

    def send_yjs(self, frame: bytes | WireMessage) -> None:
        """Queue a binary y-websocket message to this client alone."""
        data = frame.data if isinstance(frame, WireMessage) else frame
        self.traffic.outbound["yjs", yjs_type(data if isinstance(data, bytes) else b"")] += 1
        self.send(frame)

    def close(self, code: int, reason: str) -> None:
        """Close after everything already queued has been sent."""
        if self._closing:
            return
        self._closing = True
        self.close_code = code
        self._enqueue(_Close(code, reason))

    def _enqueue(self, message: Outgoing) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if len(queue) >= self._limit:
            logger.warning("closing slow client %s: send queue full", self.id)
            self._force_close(CloseCode.TRY_AGAIN_LATER, "too slow: send queue overflowed")
            return
        queue.append(message)
        if self._sender is None:
            self._start_sender(queue)

    def _start_sender(self, queue: deque[Outgoing]) -> None:
        self._sender = asyncio.create_task(self._drain(queue), name=f"sender-{self.id}")
        self._sender.add_done_callback(self._sender_done)

    def _force_close(self, code: int, reason: str) -> None:
        """Close at once, dropping what is queued (a slow consumer, or a close with no room).

        The sender may be stuck in a write that waits for the client to read, perhaps forever:
        a direct transport closes the socket itself (the close frame goes out behind what is
        already buffered; a client that reads nothing is aborted); on the ASGI path the stuck
        write is cancelled and the connection ends.
        """
        self._closing = True
        self.close_code = code
        if self._queue is not None:
            self._queue.clear()
        if self.direct is not None:
            self.direct.drop(code, reason)
            return
        if self._sender is not None:
            self._sender.cancel()
        self._end()

    def _end(self) -> None:
        self._ended = True
        if self._ended_future is not None and not self._ended_future.done():
            self._ended_future.set_result(None)

    def ended(self) -> asyncio.Future[None]:
        """Resolves when the server ends this connection without the socket closing."""
        if self._ended_future is None:
            self._ended_future = asyncio.get_running_loop().create_future()
            if self._ended:
                self._ended_future.set_result(None)
        return self._ended_future

    async def _drain(self, queue: deque[Outgoing]) -> None:
        """Write queued messages to the socket in order until none is left, a close is sent or
        the socket dies."""
        ws = self.websocket
        while queue:
            if not await self._write(ws, queue.popleft()):
                queue.clear()
                self._closing = True
                return

    def _sender_done(self, task: asyncio.Task[None]) -> None:
        self._sender = None
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            # A bug, not bad input: this connection ends, the document and others carry on.
            logger.error("sending to connection %s failed", self.id, exc_info=error)
            self._closing = True
            self._end()
        elif self._queue:
            # Queued while the last write was finishing (a close frame, say): keep going.
            self._start_sender(self._queue)

    async def flush(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until what is queued, a close frame included, is
        written; then stop writing."""
        sender = self._sender
        if sender is None:
            return
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(sender), timeout)
        sender.cancel()

    async def _write(self, ws: WebSocket, item: Outgoing) -> bool:
        """Send one queued item; False once the connection is done (closed or broken)."""
        if isinstance(item, Deferred):
            try:
                result = await asyncio.shield(item.future)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                resolved = item.on_error(exc)
            else:
                resolved = item.on_result(result)
            if resolved is None:
                return True
            item = resolved
        if isinstance(item, _Close):
            if ws.application_state == WebSocketState.CONNECTED:
                # The peer may already be gone; then there is nothing left to tell it.
                with contextlib.suppress(RuntimeError, OSError):
                    await ws.close(item.code, item.reason)
            return False
        if self._write_direct(item):
            return True  # its turn has come and the buffer has room; else awaited below
        data = item.data if isinstance(item, WireMessage) else item
        try:
            if isinstance(data, bytes):
                await ws.send_bytes(data)
            else:
                await ws.send_text(data)
        except (RuntimeError, OSError, WebSocketDisconnect) as exc:
            logger.debug("send to %s failed (%r); stopping its sender", self.id, exc)
            self._closing = True
            return False
        return True
