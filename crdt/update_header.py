"""What a Yjs update (v1 encoding) writes, read without applying it.

An update is a list of struct groups (``varuint count``, then per group ``varuint structs,
varuint client, varuint start clock`` and the structs) followed by a delete set (per client a
list of clock ranges). :func:`read_update_ranges` walks it once, skipping the contents, and
returns per group the client id and the clock range it covers, plus the delete set's ranges.
The server uses it to refuse updates that write under its own client id (see
:meth:`crdt.document.PromptDocument.apply_update`) before pycrdt sees them.

Reading is strict and bounded: every length is checked against what is left of the input, and
nested ``any`` values deeper than :data:`MAX_ANY_DEPTH` are refused, so a hostile update costs
O(its size). Whatever this module refuses, pycrdt would refuse too or store as garbage.
"""

from __future__ import annotations

from typing import NamedTuple

from crdt.errors import UpdateError

__all__ = [
    "MAX_ANY_DEPTH",
    "ClockRange",
    "UpdateRanges",
    "read_state_vector",
    "read_update_ranges",
]

MAX_ANY_DEPTH = 64
"""Deepest nesting of lib0 ``any`` values (arrays, objects) accepted in an update."""

_MAX_VAR_UINT_BYTES = 8  # 53 bits, like lib0 (JavaScript's safe integers)

# Content refs of an item (the low five bits of its info byte); 0 is GC and 10 Skip.
_GC, _DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC, _SKIP = range(11)
_XML_ELEMENT, _XML_HOOK = 3, 5  # type refs that carry a name


class ClockRange(NamedTuple):
    """Clocks ``start`` (inclusive) to ``end`` (exclusive) of one client."""

    client: int
    start: int
    end: int


class UpdateRanges(NamedTuple):
    """The struct groups an update creates and the ranges its delete set deletes."""

    structs: list[ClockRange]
    deletes: list[ClockRange]


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise UpdateError("truncated Yjs update")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def skip(self, count: int) -> None:
        if count > len(self.data) - self.pos:
            raise UpdateError("truncated Yjs update: a length exceeds the input")
        self.pos += count

    def uint(self) -> int:
        # The hot path of every update: most varuints are one byte, read inline.
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise UpdateError("truncated Yjs update")
        byte = data[pos]
        pos += 1
        value = byte & 0x7F
        shift = 7
        while byte >= 0x80:
            if shift >= 7 * _MAX_VAR_UINT_BYTES:
                raise UpdateError("malformed Yjs update: varuint longer than 53 bits")
            if pos >= len(data):
                raise UpdateError("truncated Yjs update")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
        self.pos = pos
        return value

    def signed(self) -> None:  # a signed varint: 6 bits, then 7 per byte
        byte = self.byte()
        for _ in range(_MAX_VAR_UINT_BYTES):
            if byte < 0x80:
                return
            byte = self.byte()
        raise UpdateError("malformed Yjs update: varint longer than 53 bits")

    def blob(self) -> bytes:
        length = self.uint()
        start = self.pos
        self.skip(length)
        return self.data[start : self.pos]

    def string_units(self) -> int:
        """Skip a varstring; return its length in UTF-16 units (the clocks it takes)."""
        try:
            text = self.blob().decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise UpdateError("malformed Yjs update: a string is not UTF-8") from exc
        return len(text.encode("utf-16-le", "surrogatepass")) // 2

    def any(self, depth: int = 0) -> None:
        """Skip one lib0 ``any`` value (recursion bounded by :data:`MAX_ANY_DEPTH`)."""
        tag = self.byte()
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if tag == 125:
            self.signed()
        elif tag == 124:
            self.skip(4)
        elif tag in (123, 122):  # float64, bigint
            self.skip(8)
        elif tag in (119, 116):  # string, byte array
            self.blob()
        elif tag in (118, 117):  # object (key, value pairs), array
            if depth >= MAX_ANY_DEPTH:
                raise UpdateError(f"Yjs update nests values deeper than {MAX_ANY_DEPTH}")
            # Each entry takes at least one byte: a count beyond the input is a lie, refused
            # before the loop so that a huge count costs nothing.
            count = self.uint()
            if count > len(self.data) - self.pos:
                raise UpdateError("truncated Yjs update: a collection exceeds the input")
            for _ in range(count):
                if tag == 118:
                    self.blob()
                self.any(depth + 1)
        else:
            raise UpdateError(f"malformed Yjs update: unknown value tag {tag}")


def read_state_vector(state_vector: bytes) -> dict[int, int]:
    """Decode an encoded state vector: per client id, the number of clocks known.

    Raises:
        UpdateError: it is malformed.
    """
    reader = _Reader(bytes(state_vector))
    return {reader.uint(): reader.uint() for _ in range(_count(reader))}


def read_update_ranges(update: bytes) -> UpdateRanges:
    """The clock ranges ``update`` creates (per struct group) and deletes.

    Raises:
        UpdateError: the update is not a well-formed v1 update.
    """
    reader = _Reader(bytes(update))
    structs: list[ClockRange] = []
    for _ in range(_count(reader)):
        count = reader.uint()
        client = reader.uint()
        start = clock = reader.uint()
        if count > len(reader.data) - reader.pos:
            raise UpdateError("truncated Yjs update: a struct group exceeds the input")
        for _ in range(count):
            clock += _struct_length(reader)
        structs.append(ClockRange(client, start, clock))
    deletes: list[ClockRange] = []
    for _ in range(_count(reader)):
        client = reader.uint()
        for _ in range(_count(reader)):
            start = reader.uint()
            deletes.append(ClockRange(client, start, start + reader.uint()))
    if reader.pos != len(reader.data):
        raise UpdateError("malformed Yjs update: trailing bytes after the delete set")
    return UpdateRanges(structs, deletes)


def _count(reader: _Reader) -> int:
    count = reader.uint()
    if count > len(reader.data) - reader.pos:
        raise UpdateError("truncated Yjs update: a count exceeds the input")
    return count


def _struct_length(reader: _Reader) -> int:
    """Skip one struct; return how many clocks it takes."""
    info = reader.byte()
    ref = info & 0x1F
    if ref in (_GC, _SKIP):
        return reader.uint()
    if info & 0x80:  # origin id
        reader.uint()
        reader.uint()
    if info & 0x40:  # right origin id
        reader.uint()
        reader.uint()
    if not info & 0xC0:  # no origins: the parent is written out
        if reader.uint() == 1:
            reader.blob()  # a root type's name
        else:
            reader.uint()
            reader.uint()
        if info & 0x20:
            reader.blob()  # parent sub (a map key)
    if ref == _DELETED:
        return reader.uint()
    if ref in (_JSON, _ANY):
        count = reader.uint()
        if count > len(reader.data) - reader.pos:
            raise UpdateError("truncated Yjs update: a content exceeds the input")
        for _ in range(count):
            if ref == _JSON:
                reader.blob()
            else:
                reader.any()
        return count
    if ref == _STRING:
        return reader.string_units()
    if ref in (_BINARY, _EMBED):
        reader.blob()
    elif ref == _FORMAT:
        reader.blob()
        reader.blob()
    elif ref == _TYPE:
        if reader.uint() in (_XML_ELEMENT, _XML_HOOK):
            reader.blob()
    elif ref == _DOC:
        reader.blob()
        reader.any()
    else:
        raise UpdateError(f"malformed Yjs update: unknown content ref {ref}")
    return 1
