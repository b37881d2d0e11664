"""The y-websocket wire protocol (y-protocols sync and awareness over lib0 encoding).

A frame holds exactly one message, starting with a varuint message type:

* ``0`` sync, then a varuint sub-type: ``0`` step 1 (a state vector), ``1`` step 2 (an update),
  ``2`` update; the payload is a var-length byte array.
* ``1`` awareness, then a byte array holding an awareness update:
  ``varuint count, count x (varuint client id, varuint clock, varstring JSON state)``.
* ``2`` auth: servers never accept it from clients, so decoding it is an error.
* ``3`` query awareness, no payload.

lib0 varuints are little-endian base-128, at most 53 bits (JavaScript's safe integers). Decoding
is strict: a truncated, oversized or trailing-garbage frame raises :class:`ProtocolError`, and no
length read from a frame can make the decoder allocate more than the frame itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from crdt.errors import ProtocolError

__all__ = [
    "MAX_VAR_UINT",
    "AwarenessEntry",
    "AwarenessMessage",
    "Decoder",
    "Message",
    "MessageType",
    "QueryAwareness",
    "SyncStep1",
    "SyncStep2",
    "SyncType",
    "SyncUpdate",
    "decode_awareness",
    "decode_message",
    "encode_awareness",
    "encode_awareness_message",
    "encode_message",
    "encode_permission_denied",
    "encode_query_awareness",
    "encode_sync_step1",
    "encode_sync_step2",
    "encode_sync_update",
    "read_var_uint",
    "write_var_bytes",
    "write_var_string",
    "write_var_uint",
]

MAX_VAR_UINT = 2**53 - 1
"""Largest varuint lib0 reads (``Number.MAX_SAFE_INTEGER``)."""

_MAX_VAR_UINT_BYTES = 8  # ceil(53 / 7)


class MessageType(IntEnum):
    """Top-level y-websocket message types."""

    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class SyncType(IntEnum):
    """Sub-types of a sync message."""

    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


# --- primitives -----------------------------------------------------------------------------


def write_var_uint(value: int) -> bytes:
    """Encode an unsigned integer (at most 53 bits) as a lib0 varuint."""
    if not 0 <= value <= MAX_VAR_UINT:
        raise ValueError(f"varuint out of range: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def write_var_bytes(data: bytes) -> bytes:
    """Encode a lib0 var-length byte array: varuint length, then the bytes."""
    return write_var_uint(len(data)) + data


def write_var_string(text: str) -> bytes:
    """Encode a lib0 varstring: the UTF-8 bytes as a var-length byte array."""
    return write_var_bytes(text.encode("utf-8"))


class Decoder:
    """Reads lib0 values from a byte string, raising :class:`ProtocolError` on bad input."""

    def __init__(self, data: bytes) -> None:
        """Start reading at the beginning of ``data``."""
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        """Number of bytes not read yet."""
        return len(self._data) - self._pos

    def read_var_uint(self, what: str = "varuint") -> int:
        """Read a varuint of at most 53 bits."""
        value = 0
        shift = 0
        for _ in range(_MAX_VAR_UINT_BYTES):
            if self._pos >= len(self._data):
                raise ProtocolError(f"truncated {what}")
            byte = self._data[self._pos]
            self._pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                if value > MAX_VAR_UINT:
                    raise ProtocolError(f"{what} is longer than 53 bits")
                return value
        raise ProtocolError(f"{what} is longer than 53 bits")

    def read_var_bytes(self, what: str = "byte array") -> bytes:
        """Read a var-length byte array (never longer than what is left of the input)."""
        length = self.read_var_uint(f"{what} length")
        if length > self.remaining:
            raise ProtocolError(
                f"truncated {what}: declares {length} bytes, {self.remaining} remain"
            )
        start = self._pos
        self._pos += length
        return self._data[start : self._pos]

    def read_var_string(self, what: str = "string") -> str:
        """Read a varstring (UTF-8)."""
        raw = self.read_var_bytes(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"{what} is not valid UTF-8") from exc

    def expect_end(self, what: str) -> None:
        """Raise unless every byte has been read."""
        if self.remaining:
            raise ProtocolError(f"{self.remaining} unexpected trailing byte(s) after {what}")


def read_var_uint(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Read a varuint from ``data`` at ``offset``; return ``(value, next_offset)``."""
    decoder = Decoder(data[offset:])
    value = decoder.read_var_uint()
    return value, len(data) - decoder.remaining


# --- messages -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncStep1:
    """Sync step 1: the sender's state vector; answer with a :class:`SyncStep2`."""

    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    """Sync step 2: the update the receiver is missing (reply to a step 1)."""

    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    """An incremental document update."""

    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessMessage:
    """An awareness update; ``payload`` is the encoded update (see :func:`decode_awareness`)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    """A request for the awareness states of every client."""


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessMessage | QueryAwareness


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's awareness state; ``state is None`` means the client is gone."""

    client_id: int
    clock: int
    state: dict[str, Any] | None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_awareness(payload: bytes) -> list[AwarenessEntry]:
    """Decode an awareness update.

    Each state must be a JSON object, or ``null`` for a removed client.

    Raises:
        ProtocolError: the payload is malformed.
    """
    decoder = Decoder(payload)
    count = decoder.read_var_uint("awareness entry count")
    if count > decoder.remaining // 3:  # every entry takes at least three bytes
        raise ProtocolError(f"awareness update declares {count} entries but is too short")
    entries: list[AwarenessEntry] = []
    for _ in range(count):
        client_id = decoder.read_var_uint("awareness client id")
        clock = decoder.read_var_uint("awareness clock")
        raw = decoder.read_var_string("awareness state")
        try:
            state = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"awareness state of client {client_id} is not JSON") from exc
        if state is not None and not isinstance(state, dict):
            raise ProtocolError(f"awareness state of client {client_id} is not an object")
        entries.append(AwarenessEntry(client_id, clock, state))
    decoder.expect_end("awareness update")
    return entries


def encode_awareness(entries: Sequence[AwarenessEntry]) -> bytes:
    """Encode an awareness update (JSON like JavaScript's ``JSON.stringify``)."""
    parts = [write_var_uint(len(entries))]
    for entry in entries:
        state = json.dumps(entry.state, separators=(",", ":"), ensure_ascii=False)
        parts += [write_var_uint(entry.client_id), write_var_uint(entry.clock)]
        parts.append(write_var_string(state))
    return b"".join(parts)


def decode_message(frame: bytes) -> Message:
    """Decode one y-websocket frame, which must hold exactly one message.

    Awareness payloads are validated (:func:`decode_awareness`) but kept as bytes.

    Raises:
        ProtocolError: empty, truncated or oversized values, unknown or refused (auth) message
            types, or trailing bytes.
    """
    if not frame:
        raise ProtocolError("empty frame")
    decoder = Decoder(frame)
    message_type = decoder.read_var_uint("message type")
    message: Message
    if message_type == MessageType.SYNC:
        sync_type = decoder.read_var_uint("sync message type")
        if sync_type == SyncType.STEP1:
            message = SyncStep1(decoder.read_var_bytes("state vector"))
        elif sync_type == SyncType.STEP2:
            message = SyncStep2(decoder.read_var_bytes("update"))
        elif sync_type == SyncType.UPDATE:
            message = SyncUpdate(decoder.read_var_bytes("update"))
        else:
            raise ProtocolError(f"unknown sync message type {sync_type}")
    elif message_type == MessageType.AWARENESS:
        payload = decoder.read_var_bytes("awareness update")
        decode_awareness(payload)
        message = AwarenessMessage(payload)
    elif message_type == MessageType.QUERY_AWARENESS:
        message = QueryAwareness()
    elif message_type == MessageType.AUTH:
        raise ProtocolError("auth messages are not accepted from clients")
    else:
        raise ProtocolError(f"unknown message type {message_type}")
    decoder.expect_end("the message")
    return message


def encode_sync_step1(state_vector: bytes) -> bytes:
    """Encode a sync step 1 frame."""
    return bytes((MessageType.SYNC, SyncType.STEP1)) + write_var_bytes(state_vector)


def encode_sync_step2(update: bytes) -> bytes:
    """Encode a sync step 2 frame."""
    return bytes((MessageType.SYNC, SyncType.STEP2)) + write_var_bytes(update)


def encode_sync_update(update: bytes) -> bytes:
    """Encode a sync update frame."""
    return bytes((MessageType.SYNC, SyncType.UPDATE)) + write_var_bytes(update)


def encode_awareness_message(payload: bytes) -> bytes:
    """Encode an awareness frame around an encoded awareness update."""
    return bytes((MessageType.AWARENESS,)) + write_var_bytes(payload)


def encode_permission_denied(reason: str) -> bytes:
    """Encode an auth "permission denied" frame (type 2, sub-type 0, varstring reason).

    Stock y-websocket clients report it through their ``permissionDeniedHandler``.
    """
    return bytes((MessageType.AUTH, 0)) + write_var_string(reason)


def encode_query_awareness() -> bytes:
    """Encode a query-awareness frame."""
    return bytes((MessageType.QUERY_AWARENESS,))


def encode_message(message: Message) -> bytes:
    """Encode any :data:`Message` (the inverse of :func:`decode_message`)."""
    if isinstance(message, SyncStep1):
        return encode_sync_step1(message.state_vector)
    if isinstance(message, SyncStep2):
        return encode_sync_step2(message.update)
    if isinstance(message, SyncUpdate):
        return encode_sync_update(message.update)
    if isinstance(message, AwarenessMessage):
        return encode_awareness_message(message.payload)
    return encode_query_awareness()
