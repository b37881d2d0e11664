"""One client's websocket: identity, role, protocol, and an ordered, bounded outgoing queue.

Everything sent to a client goes through :meth:`ClientConnection.send`; a single sender task
writes the queue to the socket in order. An acknowledgement that must wait for a database commit
is queued as a :class:`Deferred`, so messages queued after it (other clients' ops with higher
revisions) are never delivered before it. A client that cannot keep up is closed with 1013 instead
of letting its queue grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from server.auth import Principal
from server.hub.closing import CloseCode
from server.hub.ratelimit import TokenBucket

logger = logging.getLogger(__name__)

ROLE_RANK = {"VIEWER": 0, "EDITOR": 1, "OWNER": 2}


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


Outgoing = str | bytes | Deferred | _Close


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
    ) -> None:
        self.id = uuid.uuid4().hex
        self.websocket = websocket
        self.principal = principal
        self.role = role
        self.protocol: WireProtocol | None = None
        self.rate_limit = rate_limit
        self.rate_violations = 0
        # The awareness client id that stands for this connection when it speaks JSON.
        self.awareness_client_id = new_awareness_client_id()
        self.awareness_clock = 0
        # Awareness client ids announced by this connection (Yjs clients pick their own).
        self.yjs_client_ids: set[int] = set()
        self.cursor: dict[str, int] | None = None
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=send_queue_limit)
        self._closing = False
        self.close_code: int | None = None

    @property
    def user_id(self) -> str:
        """The connected user's id."""
        return self.principal.user_id

    @property
    def can_edit(self) -> bool:
        """Whether the current role may change the document (checked on every change)."""
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK["EDITOR"]

    @property
    def is_closing(self) -> bool:
        """True once a close has been requested."""
        return self._closing

    def send(self, message: Outgoing) -> None:
        """Queue a message; a full queue means a slow consumer, which is closed (1013)."""
        if self._closing:
            return
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            logger.warning("closing slow client %s: send queue full", self.id)
            self._force_close(CloseCode.TRY_AGAIN_LATER, "too slow: send queue overflowed")

    def send_json(self, message: dict[str, Any]) -> None:
        """Queue a JSON protocol message."""
        self.send(dumps(message))

    def close(self, code: int, reason: str) -> None:
        """Close after everything already queued has been sent."""
        if self._closing:
            return
        self._closing = True
        self.close_code = code
        try:
            self._queue.put_nowait(_Close(code, reason))
        except asyncio.QueueFull:
            self._force_close(code, reason)

    def _force_close(self, code: int, reason: str) -> None:
        self._closing = True
        self.close_code = code
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_Close(code, reason))

    async def run_sender(self) -> None:
        """Write queued messages to the socket in order until a close is sent or the socket dies."""
        ws = self.websocket
        while True:
            item = await self._queue.get()
            if isinstance(item, Deferred):
                try:
                    result = await asyncio.shield(item.future)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    item_out = item.on_error(exc)
                else:
                    item_out = item.on_result(result)
                if item_out is None:
                    continue
                item = item_out
            if isinstance(item, _Close):
                if ws.application_state == WebSocketState.CONNECTED:
                    # The peer may already be gone; then there is nothing left to tell it.
                    with contextlib.suppress(RuntimeError, OSError):
                        await ws.close(item.code, item.reason)
                return
            try:
                if isinstance(item, bytes):
                    await ws.send_bytes(item)
                else:
                    await ws.send_text(item)
            except (RuntimeError, OSError) as exc:
                logger.debug("send to %s failed (%s); stopping its sender", self.id, exc)
                self._closing = True
                return
