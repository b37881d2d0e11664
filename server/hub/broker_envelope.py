"""The broker's envelope, its binary wire frame and the receiver's sequence tracking.

Every message that crosses the fan-out broker is an :class:`Envelope`: which channel it was
published on, which node sent it, that node's sequence number on that channel, a short ASCII
``kind`` tag and an opaque binary payload (a Yjs update, an awareness update, ...). Payloads are
never decoded as text.

Frame layout, version 1 (all integers are unsigned LEB128 varuints, at most 64 bits)::

    u8        version (= 1)
    varuint   channel length, then the channel as UTF-8
    varuint   sender length, then the sender node id as UTF-8
    varuint   seq (>= 1)
    varuint   kind length, then the kind as visible ASCII (no spaces)
    varuint   payload length, then the payload bytes

The frame must end exactly after the payload; anything else (unknown version, truncation,
trailing bytes, bad UTF-8, seq 0, an oversized field) is a :class:`MalformedFrame`. The
``gap`` flag is receiver-side state and is never on the wire.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "FRAME_VERSION",
    "MAX_CHANNEL_BYTES",
    "MAX_KIND_BYTES",
    "MAX_NODE_ID_BYTES",
    "MAX_TRACKED_SENDERS",
    "Envelope",
    "MalformedFrame",
    "SequenceTracker",
    "decode_envelope",
    "encode_envelope",
    "validate_channel",
    "validate_kind",
    "validate_node_id",
]

FRAME_VERSION = 1
"""The version byte written by :func:`encode_envelope`; other versions are rejected."""

MAX_CHANNEL_BYTES = 1024
"""Longest channel name (UTF-8 bytes)."""

MAX_NODE_ID_BYTES = 255
"""Longest node id (UTF-8 bytes)."""

MAX_KIND_BYTES = 32
"""Longest ``kind`` tag (ASCII characters)."""

MAX_TRACKED_SENDERS = 1024
"""How many senders per channel a :class:`SequenceTracker` remembers."""

_KIND = re.compile(r"[\x21-\x7e]+")
_MAX_VARUINT_BYTES = 10  # 64 bits / 7 bits per byte, rounded up
_MAX_UINT64 = (1 << 64) - 1


class MalformedFrame(ValueError):
    """A byte string is not a valid envelope frame."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message on a broker channel.

    ``seq`` counts the sender's publishes on this channel, starting at 1. ``gap`` is set by the
    receiving broker when it detected that messages from this sender on this channel were
    missed (see :class:`server.hub.broker.Broker` for the exact rule); it is always ``False``
    on the publishing side and is not part of the wire frame.
    """

    channel: str
    sender: str
    seq: int
    kind: str
    payload: bytes
    gap: bool = False


def validate_channel(channel: str) -> None:
    """Raise ``ValueError`` unless ``channel`` is a usable channel name."""
    if not isinstance(channel, str) or not channel:
        raise ValueError("channel must be a non-empty string")
    if len(channel.encode("utf-8")) > MAX_CHANNEL_BYTES:
        raise ValueError(f"channel longer than {MAX_CHANNEL_BYTES} bytes")


def validate_node_id(node_id: str) -> None:
    """Raise ``ValueError`` unless ``node_id`` is a usable node id."""
    if not isinstance(node_id, str) or not node_id:
        raise ValueError("node_id must be a non-empty string")
    if len(node_id.encode("utf-8")) > MAX_NODE_ID_BYTES:
        raise ValueError(f"node_id longer than {MAX_NODE_ID_BYTES} bytes")


def validate_kind(kind: str) -> None:
    """Raise ``ValueError`` unless ``kind`` is 1-32 visible ASCII characters (no spaces)."""
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_KIND_BYTES:
        raise ValueError(f"kind must be 1-{MAX_KIND_BYTES} characters")
    if not _KIND.fullmatch(kind):
        raise ValueError("kind must be visible ASCII without spaces")


def _varuint(value: int) -> bytes:
    if not 0 <= value <= _MAX_UINT64:
        raise ValueError(f"varuint out of range: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode ``envelope`` (without its ``gap`` flag) as a version-1 frame."""
    validate_channel(envelope.channel)
    validate_node_id(envelope.sender)
    validate_kind(envelope.kind)
    if envelope.seq < 1:
        raise ValueError("seq must be >= 1")
    if not isinstance(envelope.payload, bytes | bytearray | memoryview):
        raise TypeError("payload must be bytes")
    channel = envelope.channel.encode("utf-8")
    sender = envelope.sender.encode("utf-8")
    kind = envelope.kind.encode("ascii")
    payload = envelope.payload
    return b"".join(
        (
            bytes((FRAME_VERSION,)),
            _varuint(len(channel)),
            channel,
            _varuint(len(sender)),
            sender,
            _varuint(envelope.seq),
            _varuint(len(kind)),
            kind,
            _varuint(len(payload)),
            payload,
        )
    )


class _Reader:
    """A cursor over a frame that raises :class:`MalformedFrame` on any inconsistency."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    def byte(self) -> int:
        if self._pos >= len(self._data):
            raise MalformedFrame("truncated frame")
        value = self._data[self._pos]
        self._pos += 1
        return value

    def varuint(self) -> int:
        pos = self._pos
        if pos < len(self._data) and self._data[pos] < 0x80:  # one byte: every length here
            self._pos = pos + 1
            return self._data[pos]
        value = 0
        for index in range(_MAX_VARUINT_BYTES):
            byte = self.byte()
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                if value > _MAX_UINT64:
                    raise MalformedFrame("varuint out of range")
                return value
        raise MalformedFrame("varuint too long")

    def chunk(self, limit: int | None = None) -> bytes:
        length = self.varuint()
        if limit is not None and length > limit:
            raise MalformedFrame(f"field of {length} bytes exceeds {limit}")
        end = self._pos + length
        if end > len(self._data):
            raise MalformedFrame("truncated frame")
        value = self._data[self._pos : end]
        self._pos = end
        return value

    def text(self, limit: int) -> str:
        try:
            return self.chunk(limit).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedFrame("field is not valid UTF-8") from exc

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise MalformedFrame(f"{len(self._data) - self._pos} trailing bytes")


def decode_envelope(data: bytes) -> Envelope:
    """Decode a frame made by :func:`encode_envelope`.

    Raises :class:`MalformedFrame` for anything that is not a complete, valid version-1 frame.
    """
    reader = _Reader(data)
    version = reader.byte()
    if version != FRAME_VERSION:
        raise MalformedFrame(f"unsupported frame version {version}")
    channel = reader.text(MAX_CHANNEL_BYTES)
    sender = reader.text(MAX_NODE_ID_BYTES)
    seq = reader.varuint()
    kind = reader.text(MAX_KIND_BYTES)
    payload = reader.chunk()
    reader.finish()
    if not channel or not sender:
        raise MalformedFrame("empty channel or sender")
    if seq < 1:
        raise MalformedFrame("seq must be >= 1")
    try:
        validate_kind(kind)
    except ValueError as exc:
        raise MalformedFrame(str(exc)) from exc
    return Envelope(channel=channel, sender=sender, seq=seq, kind=kind, payload=payload)


class SequenceTracker:
    """The last ``seq`` seen per sender on one channel, for gap detection.

    Bounded: beyond :data:`MAX_TRACKED_SENDERS` senders the least recently heard is forgotten
    (its next envelope then counts as a first one). The rule is documented in
    :mod:`server.hub.broker`.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: OrderedDict[str, int] = OrderedDict()

    def observe(self, sender: str, seq: int) -> bool:
        """Record ``seq`` from ``sender``; return whether messages were missed before it."""
        last = self._last.pop(sender, None)
        self._last[sender] = seq
        if len(self._last) > MAX_TRACKED_SENDERS:
            self._last.popitem(last=False)
        if last is None or seq == 1:
            return False
        return seq != last + 1
