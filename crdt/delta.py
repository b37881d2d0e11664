"""Translation between pycrdt's ``Text`` indices/deltas and UTF-16 :class:`~crdt.ops.EditOp`s.

pycrdt counts a ``Text`` in UTF-8 bytes, plus one unit per embed (a non-text item a rich-text
Yjs editor may insert; embeds are invisible in ``str(text)``). The text as pycrdt indexes it is
described by *pieces*: a ``str`` for a run of characters, ``None`` for one embed. For plain text
the pieces are just ``[text]``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from crdt.errors import CrdtError
from crdt.ops import EditOp, OpOrigin
from crdt.positions import utf8_length, utf16_length, utf16_to_index

logger = logging.getLogger(__name__)

__all__ = [
    "DeltaMismatchError",
    "Piece",
    "apply_delta",
    "changes_to_ops",
    "delta_to_ops",
    "diff_to_ops",
    "utf16_to_crdt_index",
]

Piece = str | None
"""A run of characters (``str``) or one embed (``None``, one index unit, no text)."""


class DeltaMismatchError(CrdtError):
    """A delta does not fit the pieces it should apply to (internal: triggers the fallback)."""


def utf16_to_crdt_index(pieces: Sequence[Piece], pos16: int) -> int:
    """Convert a UTF-16 offset into the text to a pycrdt ``Text`` index.

    ``pos16`` must be valid for the text (see :mod:`crdt.positions`). At a boundary next to an
    embed the index before the embed is returned.
    """
    index = 0
    for piece in pieces:
        if piece is None:
            if pos16 == 0:
                return index
            index += 1
            continue
        size16 = utf16_length(piece)
        if pos16 <= size16:
            return index + utf8_length(piece[: utf16_to_index(piece, pos16)])
        pos16 -= size16
        index += utf8_length(piece)
    return index


class _Cursor:
    """Walks the pieces of the old text in pycrdt index units."""

    def __init__(self, pieces: Sequence[Piece]) -> None:
        self._pieces = [None if p is None else p.encode("utf-8") for p in pieces]
        self._i = 0
        self._offset = 0

    def take(self, units: int) -> str:
        """Consume ``units`` index units and return the characters among them."""
        parts: list[bytes] = []
        while units > 0:
            if self._i >= len(self._pieces):
                raise DeltaMismatchError("delta runs past the end of the text")
            piece = self._pieces[self._i]
            if piece is None:
                units -= 1
                self._i += 1
                continue
            step = min(len(piece) - self._offset, units)
            parts.append(piece[self._offset : self._offset + step])
            self._offset += step
            units -= step
            if self._offset == len(piece):
                self._i += 1
                self._offset = 0
        try:
            return b"".join(parts).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DeltaMismatchError("delta splits a character") from exc

    def rest(self) -> str:
        """Consume and return the characters of everything left."""
        parts: list[bytes] = []
        for i in range(self._i, len(self._pieces)):
            piece = self._pieces[i]
            if piece is not None:
                parts.append(piece[self._offset :] if i == self._i else piece)
        self._i, self._offset = len(self._pieces), 0
        try:
            return b"".join(parts).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DeltaMismatchError("delta splits a character") from exc


def _append(ops: list[EditOp], position: int, length: int, content: str, origin: OpOrigin) -> None:
    """Append an op, merging it into the previous one when they touch."""
    if ops:
        last = ops[-1]
        # ``last`` leaves its content at [last.position, last.position + len(content)); an op
        # starting right after that extends it: delete both ranges, insert both contents.
        if position == last.position + utf16_length(last.content):
            merged = EditOp.build(
                last.position, last.length + length, last.content + content, origin
            )
            assert merged is not None
            ops[-1] = merged
            return
    op = EditOp.build(position, length, content, origin)
    if op is not None:
        ops.append(op)


def delta_to_ops(
    pieces: Sequence[Piece],
    delta: Sequence[Mapping[str, Any]],
    after: str,
    origin: OpOrigin,
) -> list[EditOp]:
    """Convert a pycrdt ``TextEvent.delta`` into UTF-16 ops.

    ``pieces`` describe the text before the change. The ops are relative to the text as it
    evolves (apply them in order to the old text to get ``after``); adjacent delete and insert
    at one point merge into a replace.

    Raises:
        DeltaMismatchError: the delta does not fit ``pieces`` or does not produce ``after``.
    """
    cursor = _Cursor(pieces)
    ops: list[EditOp] = []
    new_parts: list[str] = []
    position = 0
    for item in delta:
        if "insert" in item:
            inserted = item["insert"]
            if isinstance(inserted, str) and inserted:
                _append(ops, position, 0, inserted, origin)
                new_parts.append(inserted)
                position += utf16_length(inserted)
            # an embed (non-str insert) adds no text
        elif "delete" in item:
            deleted = cursor.take(_units(item["delete"]))
            if deleted:
                _append(ops, position, utf16_length(deleted), "", origin)
        elif "retain" in item:
            kept = cursor.take(_units(item["retain"]))
            new_parts.append(kept)
            position += utf16_length(kept)
        else:
            raise DeltaMismatchError(f"unknown delta item {sorted(item)}")
    new_parts.append(cursor.rest())
    if "".join(new_parts) != after:
        raise DeltaMismatchError("delta does not produce the new text")
    return ops


def _advance(text: str, index: int, offset: int, units: int, size: int) -> int:
    """The ``str`` index reached by consuming ``units`` UTF-8 bytes of ``text`` from ``index``.

    ``offset`` is the UTF-8 offset of ``index`` and ``size`` the UTF-8 length of ``text``. Only
    the shorter of the consumed part and the rest of the text is encoded and decoded.

    Raises:
        DeltaMismatchError: the text ends first, or the bytes end inside a character.
    """
    target = offset + units
    if target > size:
        raise DeltaMismatchError("delta runs past the end of the text")
    if text.isascii():  # O(1): CPython flags ASCII strings
        return index + units
    tail = size - target  # UTF-8 bytes after the target
    if tail < units:
        chunk = text[max(index, len(text) - tail) :]  # ``tail`` bytes span at most as many chars
        if chunk.isascii():
            return len(text) - tail
        data = chunk.encode("utf-8", "surrogatepass")
        try:
            return len(text) - len(data[len(data) - tail :].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DeltaMismatchError("delta splits a character") from exc
    chunk = text[index : index + units]  # ``units`` bytes span at most as many characters
    if chunk.isascii():
        return index + units
    data = chunk.encode("utf-8", "surrogatepass")
    try:
        return index + len(data[:units].decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DeltaMismatchError("delta splits a character") from exc


def apply_delta(
    before: str,
    delta: Sequence[Mapping[str, Any]],
    origin: OpOrigin,
    *,
    size8: int | None = None,
    size16: int | None = None,
) -> tuple[str, list[EditOp], int]:
    """Apply a pycrdt ``TextEvent.delta`` to the plain text ``before`` (no embeds).

    Returns the new text, the ops :func:`delta_to_ops` gives for ``[before]`` and that text,
    and the change of the length in UTF-8 bytes (pycrdt's ``len(text)``). The new text is built
    by slicing ``before``, without asking pycrdt for the whole string (the caller checks the
    length against pycrdt's). ``size8`` and ``size16``, the lengths of ``before`` in UTF-8 bytes
    and UTF-16 units if known, let offsets past the middle be counted from the end.

    Raises:
        DeltaMismatchError: the delta does not fit ``before``, or inserts an embed (the text
            would no longer be plain); the caller falls back to :func:`changes_to_ops`.
    """
    if size8 is None:
        size8 = utf8_length(before)
    no_surrogates = size16 == len(before)
    ops: list[EditOp] = []
    parts: list[str] = []
    index = 0  # in ``before``, as a str index
    offset = 0  # the same in UTF-8 bytes
    index16 = 0  # the same in UTF-16 units
    position = 0  # in the new text, in UTF-16 units
    growth = 0  # UTF-8 bytes
    for item in delta:
        if "insert" in item:
            inserted = item["insert"]
            if not isinstance(inserted, str):
                raise DeltaMismatchError("delta inserts an embed")
            if inserted:
                _append(ops, position, 0, inserted, origin)
                parts.append(inserted)
                position += utf16_length(inserted)
                growth += utf8_length(inserted)
            continue
        if "delete" in item:
            units = _units(item["delete"])
        elif "retain" in item:
            units = _units(item["retain"])
        else:
            raise DeltaMismatchError(f"unknown delta item {sorted(item)}")
        if not units:
            continue
        stop = _advance(before, index, offset, units, size8)
        if no_surrogates:
            span16 = stop - index
        elif size16 is not None and len(before) - stop < stop - index:
            span16 = size16 - index16 - utf16_length(before[stop:])
        else:
            span16 = utf16_length(before[index:stop])
        if "delete" in item:
            _append(ops, position, span16, "", origin)
            growth -= units
        else:
            parts.append(before[index:stop])
            position += span16
        index, offset, index16 = stop, offset + units, index16 + span16
    parts.append(before[index:])
    return "".join(parts), ops, growth


def _units(value: object) -> int:
    if type(value) is not int or value < 0:
        raise DeltaMismatchError(f"bad delta length {value!r}")
    return value


def _common_prefix_length(a: str, b: str) -> int:
    """Length of the common prefix, by binary search over C-level slice comparisons."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def diff_to_ops(before: str, after: str, origin: OpOrigin) -> list[EditOp]:
    """Describe the change from ``before`` to ``after`` as at most one UTF-16 op.

    The op replaces the middle that differs once the common prefix and suffix are removed.
    """
    if before == after:
        return []
    prefix = _common_prefix_length(before, after)
    limit = min(len(before), len(after)) - prefix
    suffix = _common_prefix_length(before[::-1][:limit], after[::-1][:limit])
    removed = before[prefix : len(before) - suffix]
    added = after[prefix : len(after) - suffix]
    op = EditOp.build(utf16_length(before[:prefix]), utf16_length(removed), added, origin)
    return [] if op is None else [op]


def changes_to_ops(
    pieces: Sequence[Piece],
    deltas: Sequence[Sequence[Mapping[str, Any]]],
    before: str,
    after: str,
    origin: OpOrigin,
) -> list[EditOp]:
    """Ops for a transaction that turned ``before`` into ``after``.

    Uses the transaction's text delta when there is exactly one and it fits; otherwise (content
    pycrdt cannot describe as text, e.g. items of another type smuggled into the text) falls
    back to :func:`diff_to_ops`, so applying the ops to ``before`` always yields ``after``.
    """
    if len(deltas) == 1:
        try:
            return delta_to_ops(pieces, deltas[0], after, origin)
        except DeltaMismatchError as exc:
            # Content pycrdt does not describe as text; the diff below is always exact.
            logger.warning("text delta did not fit the text (%s); describing it by a diff", exc)
    return diff_to_ops(before, after, origin)
