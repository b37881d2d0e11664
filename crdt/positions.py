"""Conversions between the three ways of counting positions in a text.

* UTF-16 code units: what JSON clients send (JavaScript string indices; "😀" counts 2).
* UTF-8 bytes: what pycrdt's ``Text`` indexes by ("😀" counts 4, "é" counts 2).
* Python ``str`` indices: code points ("😀" counts 1).

Every function works on whole strings with C-level encode/decode calls instead of per-character
Python loops, so a 100 KB prompt costs microseconds. A position beyond the text, or one that
falls inside a character (between the two halves of a surrogate pair, or inside a multi-byte
UTF-8 sequence), raises :class:`~crdt.errors.OpError` with code ``"out_of_range"``.
"""

from __future__ import annotations

from crdt.errors import OpError

__all__ = [
    "index_to_utf16",
    "utf8_length",
    "utf8_to_utf16",
    "utf16_length",
    "utf16_slice",
    "utf16_to_index",
    "utf16_to_utf8",
]

_HIGH_SURROGATES = range(0xD800, 0xDC00)


def _out_of_range(message: str, field: str) -> OpError:
    return OpError("out_of_range", message, field)


def _encode_utf16(s: str) -> bytes:
    # "surrogatepass" keeps a lone surrogate countable (1 unit) instead of raising.
    return s.encode("utf-16-le", "surrogatepass")


def utf16_length(s: str) -> int:
    """Return the length of ``s`` in UTF-16 code units (JavaScript's ``s.length``)."""
    if s.isascii():
        return len(s)
    return len(_encode_utf16(s)) // 2


def utf8_length(s: str) -> int:
    """Return the length of ``s`` in UTF-8 bytes (pycrdt's ``len(Text)`` for plain text)."""
    if s.isascii():
        return len(s)
    return len(s.encode("utf-8", "surrogatepass"))


def utf16_to_index(s: str, pos16: int, *, field: str = "position") -> int:
    """Convert a UTF-16 offset into ``s`` to a Python ``str`` index.

    Raises ``OpError("out_of_range")`` (naming ``field``) if ``pos16`` is negative, past the end,
    or between the two halves of a surrogate pair.
    """
    if pos16 < 0:
        raise _out_of_range(f"{field} {pos16} is negative", field)
    if s.isascii():
        if pos16 > len(s):
            raise _out_of_range(
                f"{field} {pos16} is past the end of the text (length {len(s)})", field
            )
        return pos16
    units = _encode_utf16(s)
    total = len(units) // 2
    if pos16 > total:
        raise _out_of_range(f"{field} {pos16} is past the end of the text (length {total})", field)
    if total == len(s):  # no surrogate pairs: code units and code points coincide
        return pos16
    if 0 < pos16 < total:
        previous = int.from_bytes(units[2 * pos16 - 2 : 2 * pos16], "little")
        following = int.from_bytes(units[2 * pos16 : 2 * pos16 + 2], "little")
        if previous in _HIGH_SURROGATES and 0xDC00 <= following <= 0xDFFF:
            raise _out_of_range(
                f"{field} {pos16} falls inside a surrogate pair (it would split a character)",
                field,
            )
    return len(units[: 2 * pos16].decode("utf-16-le", "surrogatepass"))


def index_to_utf16(s: str, index: int) -> int:
    """Convert a Python ``str`` index into ``s`` to a UTF-16 offset."""
    if not 0 <= index <= len(s):
        raise _out_of_range(f"index {index} is outside the text (length {len(s)})", "position")
    return utf16_length(s[:index])


def utf16_to_utf8(s: str, pos16: int, *, field: str = "position") -> int:
    """Convert a UTF-16 offset into ``s`` to a UTF-8 byte offset (what pycrdt's ``Text`` takes)."""
    index = utf16_to_index(s, pos16, field=field)
    if s.isascii():
        return index
    return utf8_length(s[:index])


def utf8_to_utf16(s: str, pos8: int) -> int:
    """Convert a UTF-8 byte offset into ``s`` to a UTF-16 offset.

    Raises ``OpError("out_of_range")`` if ``pos8`` is negative, past the end, or inside a
    multi-byte UTF-8 sequence.
    """
    if s.isascii():
        if not 0 <= pos8 <= len(s):
            raise _out_of_range(
                f"byte offset {pos8} is outside the text (length {len(s)})", "position"
            )
        return pos8
    data = s.encode("utf-8", "surrogatepass")
    if not 0 <= pos8 <= len(data):
        raise _out_of_range(
            f"byte offset {pos8} is outside the text (length {len(data)})", "position"
        )
    if pos8 < len(data) and 0x80 <= data[pos8] <= 0xBF:
        raise _out_of_range(f"byte offset {pos8} falls inside a character", "position")
    return utf16_length(data[:pos8].decode("utf-8", "surrogatepass"))


def utf16_slice(s: str, start16: int, end16: int) -> str:
    """Return the part of ``s`` between two UTF-16 offsets (``s[start16:end16]`` in JavaScript)."""
    start = utf16_to_index(s, start16)
    end = utf16_to_index(s, end16, field="length")
    if end < start:
        raise _out_of_range(f"slice end {end16} is before its start {start16}", "length")
    return s[start:end]
