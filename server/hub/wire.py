"""What the hub hands to a socket: messages encoded once, and the direct-transport contract.

A broadcast reaches many clients with the same bytes. :class:`WireMessage` carries one message's
payload and builds its websocket frame at most once, so fanning an update out to N clients costs
one encoding and N socket writes. The frame is the plain (unmasked, unfragmented, uncompressed)
form a server sends; a transport that negotiated compression with its client encodes the payload
itself instead.

:class:`DirectTransport` is what the hub needs from a transport that can write synchronously (see
:mod:`server.ws_protocol`); without one, messages take the portable ASGI path.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Protocol

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
_FIN = 0x80

# The ASGI scope extension under which a direct transport is offered.
DIRECT_EXTENSION = "prompt_studio.direct"


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One complete, unmasked websocket frame (RFC 6455 §5.2) as a server sends it."""
    size = len(payload)
    if size < 126:
        header = bytes((_FIN | opcode, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN | opcode, 127, size)
    return header + payload


class WireMessage:
    """A text or binary message to send to one or many clients, encoded lazily and once."""

    __slots__ = ("_frame", "_payload", "data")

    def __init__(self, data: bytes | str) -> None:
        self.data = data
        self._payload: bytes | None = None
        self._frame: bytes | None = None

    @property
    def is_binary(self) -> bool:
        """True for a binary message, False for text."""
        return isinstance(self.data, bytes)

    @property
    def payload(self) -> bytes:
        """The message's bytes (text encoded as UTF-8)."""
        if self._payload is None:
            data = self.data
            self._payload = data if isinstance(data, bytes) else data.encode("utf-8")
        return self._payload

    @property
    def frame(self) -> bytes:
        """The whole uncompressed websocket frame, built on first use."""
        if self._frame is None:
            opcode = OPCODE_BINARY if isinstance(self.data, bytes) else OPCODE_TEXT
            self._frame = encode_frame(opcode, self.payload)
        return self._frame

    def __repr__(self) -> str:
        kind = "binary" if self.is_binary else "text"
        return f"<WireMessage {kind} {len(self.data)}>"


Receiver = Callable[[bytes | str], None]
"""Called synchronously with each message a client sends (bytes for binary, str for text)."""


class DirectTransport(Protocol):
    """A websocket that can be written to and read from without a task switch per message."""

    def write(self, message: WireMessage) -> bool:
        """Write the message now; False if it cannot be (buffer full, closing): queue it."""

    def set_receiver(self, receiver: Receiver | None) -> None:
        """Deliver later messages to ``receiver`` as they arrive instead of to ASGI receive."""

    def drop(self, code: int, reason: str) -> None:
        """Close now without waiting for earlier writes: a close frame behind what is already
        buffered, then the connection; abort it if the client does not read that in time."""
