"""A stand-in for the direct websocket transport, for tests of the hub without sockets."""

from __future__ import annotations

import asyncio

from server.auth import Principal
from server.hub.connection import ClientConnection, WireProtocol
from server.hub.ratelimit import TokenBucket
from server.hub.wire import Receiver, WireMessage


class RecordingTransport:
    """Takes every write while ``full`` is unset (a transport whose buffer has room)."""

    def __init__(self) -> None:
        self.full = False
        self.written: list[bytes | str] = []
        self.dropped: tuple[int, str] | None = None

    def write(self, message: WireMessage) -> bool:
        if self.full or self.dropped is not None:
            return False
        self.written.append(message.data)
        return True

    def set_receiver(self, receiver: Receiver | None) -> None:
        raise AssertionError("the hub under test does not read through the transport")

    def drop(self, code: int, reason: str) -> None:
        self.dropped = (code, reason)


def recording_json_connection(user: str, role: str = "EDITOR") -> ClientConnection:
    """A JSON-protocol connection of ``user`` with no socket: what it is sent is recorded."""
    conn = ClientConnection(
        None,  # type: ignore[arg-type]  # everything goes through the recording transport
        Principal(user, "t", f"{user}@example.test", user, "#3B82F6"),
        role,
        send_queue_limit=1024,
        rate_limit=TokenBucket(100, 100),
        direct=RecordingTransport(),
    )
    conn.protocol = WireProtocol.JSON
    return conn


class InstantWriter:
    """A history writer for in-process rooms that takes every edit at once and stores nothing."""

    def admit(self) -> bool:
        return True

    def submit(self, *_: object, **__: object) -> asyncio.Future[list[int]]:
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        future.set_result([])
        return future

    def log_update(self, *_: object) -> None:
        pass
