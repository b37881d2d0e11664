"""A JSON-protocol collaboration client for tests, over a real websocket."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

Message = dict[str, Any]


class JsonClient:
    """Connects to ``/ws/{share_token}?protocol=json``, keeps the text and revision up to date.

    Incoming ``op`` frames are applied to ``self.text`` (UTF-16 positions, like a browser), so a
    test can compare what each client sees.
    """

    _ids = itertools.count(1)

    def __init__(self, ws_base: str, share_token: str, token: str | None, **params: str) -> None:
        query = {"protocol": "json", **params}
        if token is not None:
            query["token"] = token
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        self.url = f"{ws_base}/ws/{share_token}?{qs}"
        self.ws: ClientConnection | None = None
        self.messages: list[Message] = []
        self._arrived = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self.text = ""
        self.rev = 0
        self.welcome: Message | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = asyncio.Event()

    async def connect(self, *, wait_welcome: bool = True, timeout: float = 10.0) -> JsonClient:
        """Open the socket (and wait for ``welcome`` unless told otherwise)."""
        self.ws = await connect(self.url, max_size=None, open_timeout=timeout)
        self._reader = asyncio.create_task(self._read())
        if wait_welcome:
            self.welcome = await self.wait_for(lambda m: m.get("type") == "welcome", timeout)
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                message = (
                    json.loads(raw) if isinstance(raw, str) else {"type": "binary", "data": raw}
                )
                self._track(message)
                async with self._arrived:
                    self.messages.append(message)
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass
        finally:
            if self.ws.close_code is not None:
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason
            self.closed.set()
            async with self._arrived:
                self._arrived.notify_all()

    def _track(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "welcome":
            self.text = message["content"]
            self.rev = message["rev"]
        elif kind == "op":
            self.text = apply_utf16(self.text, message["op"])
            self.rev = message["rev"]
        elif kind == "ack" and isinstance(message.get("rev"), int):
            # The ack carries the op as the server applied it, in stream order.
            if message.get("op") is not None:
                self.text = apply_utf16(self.text, message["op"])
            self.rev = max(self.rev, message["rev"])

    async def wait_for(
        self, predicate: Callable[[Message], bool], timeout: float = 10.0
    ) -> Message:
        """The first message (already received or arriving) that matches ``predicate``."""
        async with asyncio.timeout(timeout), self._arrived:
            seen = 0
            while True:
                for message in self.messages[seen:]:
                    if predicate(message):
                        return message
                seen = len(self.messages)
                if self.closed.is_set():
                    raise ConnectionError(
                        f"closed ({self.close_code} {self.close_reason}) before a matching message"
                    )
                await self._arrived.wait()

    async def send(self, message: Message | str | bytes) -> None:
        """Send a raw frame (dicts are JSON-encoded)."""
        assert self.ws is not None
        await self.ws.send(json.dumps(message) if isinstance(message, dict) else message)

    async def op(self, op: Message, *, rev: int | None = None, wait_ack: bool = True) -> Message:
        """Send an edit made against ``rev`` (default: the latest seen) and wait for its ack.

        The local text changes only as the server's stream says (others' ops, then the ack's op),
        so it always equals the server's text at the last revision received.
        """
        op_id = f"op-{next(self._ids)}"
        await self.send(
            {"type": "op", "id": op_id, "rev": self.rev if rev is None else rev, "op": op}
        )
        if not wait_ack:
            return {"id": op_id}
        reply = await self.wait_for(
            lambda m: m.get("id") == op_id and m.get("type") in {"ack", "error"}
        )
        return reply

    async def insert(self, position: int, content: str) -> Message:
        """Insert and wait for the ack."""
        return await self.op({"type": "insert", "position": position, "content": content})

    async def delete(self, position: int, length: int) -> Message:
        """Delete and wait for the ack."""
        return await self.op({"type": "delete", "position": position, "length": length})

    def utf16_length(self) -> int:
        """The tracked text's length in UTF-16 code units (JavaScript's ``length``)."""
        return len(self.text.encode("utf-16-le")) // 2

    async def wait_text(self, expected: str, timeout: float = 10.0) -> None:
        """Wait until the locally tracked text equals ``expected``."""
        async with asyncio.timeout(timeout), self._arrived:
            while self.text != expected:
                if self.closed.is_set():
                    raise ConnectionError("closed while waiting for text")
                await self._arrived.wait()

    async def wait_closed(self, timeout: float = 10.0) -> tuple[int | None, str | None]:
        """Wait for the server to close the socket; returns (code, reason)."""
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code, self.close_reason

    async def close(self) -> None:
        """Close from the client side and stop reading."""
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader

    async def drop(self) -> None:
        """Drop the connection abruptly (no close handshake), as a lost network does."""
        if self.ws is not None:
            self.ws.transport.abort()
        if self._reader is not None:
            await self._reader

    async def __aenter__(self) -> JsonClient:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def apply_utf16(text: str, op: Message) -> str:
    """Apply an op with UTF-16 positions to a Python string (as a browser editor would)."""
    units = text.encode("utf-16-le")
    start = op["position"] * 2
    end = start + op.get("length", 0) * 2
    content = op.get("content", "").encode("utf-16-le")
    if op["type"] == "insert":
        units = units[:start] + content + units[start:]
    elif op["type"] == "delete":
        units = units[:start] + units[end:]
    else:
        units = units[:start] + content + units[end:]
    return units.decode("utf-16-le")
