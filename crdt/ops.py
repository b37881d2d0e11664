"""Plain-text edit operations of the JSON protocol: the value type, validation, and transform.

Positions and lengths count UTF-16 code units, like JavaScript string indices.

An op is "delete ``length`` units at ``position``, then insert ``content`` at ``position``": an
insert has ``length == 0``, a delete has ``content == ""``, a replace may have both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, cast, get_args

from crdt.errors import OpError
from crdt.positions import utf16_length, utf16_to_index

__all__ = [
    "CLIENT_ORIGINS",
    "EditOp",
    "OpOrigin",
    "OpType",
    "parse_op",
    "transform",
    "transform_through",
]

OpType = Literal["insert", "delete", "replace"]
OpOrigin = Literal["user", "undo", "redo", "sync", "restore"]

OP_TYPES: frozenset[str] = frozenset(get_args(OpType))
CLIENT_ORIGINS: frozenset[str] = frozenset({"user", "undo", "redo"})


@dataclass(frozen=True, slots=True)
class EditOp:
    """One edit of the prompt text, in UTF-16 units (see the module docstring)."""

    type: OpType
    position: int
    length: int = 0
    content: str = ""
    origin: OpOrigin = "user"

    def __post_init__(self) -> None:
        if self.position < 0 or self.length < 0:
            raise ValueError(f"negative position or length in {self!r}")
        if self.type == "insert" and (self.length != 0 or not self.content):
            raise ValueError(f"an insert needs content and no length: {self!r}")
        if self.type == "delete" and (self.length == 0 or self.content):
            raise ValueError(f"a delete needs a length and no content: {self!r}")
        if self.type == "replace" and self.length == 0 and not self.content:
            raise ValueError(f"a replace must change something: {self!r}")

    @classmethod
    def build(
        cls, position: int, length: int, content: str, origin: OpOrigin = "user"
    ) -> EditOp | None:
        """Build the op that deletes ``length`` units and inserts ``content`` at ``position``.

        The type is derived (insert / delete / replace); ``None`` when it would change nothing.
        """
        if length == 0 and not content:
            return None
        op_type: OpType = "insert" if length == 0 else ("delete" if not content else "replace")
        return cls(op_type, position, length, content, origin)

    @property
    def end(self) -> int:
        """UTF-16 offset just past the deleted range (``position + length``)."""
        return self.position + self.length

    def to_json(self) -> dict[str, object]:
        """Return the ``edit_history.operation`` JSON shape: ``{type, position, length?,
        content?, origin}`` (``length`` omitted for inserts, ``content`` for deletes)."""
        result: dict[str, object] = {"type": self.type, "position": self.position}
        if self.type != "insert":
            result["length"] = self.length
        if self.type != "delete":
            result["content"] = self.content
        result["origin"] = self.origin
        return result

    def apply(self, text: str) -> str:
        """Return ``text`` with this op applied (positions validated: ``OpError`` if invalid)."""
        start = utf16_to_index(text, self.position)
        stop = utf16_to_index(text, self.end, field="length")
        return text[:start] + self.content + text[stop:]


# --- validation of client JSON -------------------------------------------------------------


def _invalid(message: str, field: str | None) -> OpError:
    return OpError("invalid_op", message, field)


def _non_negative_int(obj: dict[str, object], field: str) -> int:
    value = obj[field]
    # bool is a subclass of int; JSON true/false must not count as 1/0.
    if type(value) is not int or value < 0:
        raise _invalid(f"{field} must be a non-negative integer, got {value!r:.40}", field)
    return value


def _content(obj: dict[str, object], max_content_chars: int) -> str:
    if "content" not in obj:
        raise _invalid("content is required", "content")
    value = obj["content"]
    if not isinstance(value, str):
        raise _invalid(f"content must be a string, got {type(value).__name__}", "content")
    if len(value) > max_content_chars:
        raise OpError(
            "too_large", f"content is longer than {max_content_chars} characters", "content"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid("content contains a lone surrogate (invalid Unicode)", "content") from None
    return value


def parse_op(obj: object, *, max_content_chars: int = 1_000_000) -> EditOp:
    """Validate a client's JSON op and return it as an :class:`EditOp`.

    Accepted shape: ``{"type": "insert"|"delete"|"replace", "position": int, "length": int,
    "content": str, "origin": "user"|"undo"|"redo"}`` where an insert needs non-empty ``content``
    (``length`` absent or 0), a delete needs ``length > 0`` (``content`` absent or empty) and a
    replace needs ``length`` and ``content`` and must change something. ``origin`` defaults to
    ``"user"``. Unknown keys are ignored. Positions are only checked against the text later.

    Raises:
        OpError: ``invalid_op`` (or ``too_large`` for oversized content), naming the field.
    """
    if not isinstance(obj, dict):
        raise _invalid("an op must be a JSON object", None)
    fields: dict[str, object] = obj
    op_type = fields.get("type")
    if not isinstance(op_type, str) or op_type not in OP_TYPES:
        raise _invalid("type must be one of 'insert', 'delete', 'replace'", "type")
    if "position" not in fields:
        raise _invalid("position is required", "position")
    position = _non_negative_int(fields, "position")

    origin = fields.get("origin", "user")
    if not isinstance(origin, str) or origin not in CLIENT_ORIGINS:
        raise _invalid("origin must be one of 'user', 'undo', 'redo'", "origin")

    if op_type == "insert":
        if "length" in fields and _non_negative_int(fields, "length") != 0:
            raise _invalid("an insert takes no length", "length")
        content = _content(fields, max_content_chars)
        if not content:
            raise _invalid("an insert needs non-empty content", "content")
        length = 0
    elif op_type == "delete":
        if "length" not in fields:
            raise _invalid("length is required", "length")
        length = _non_negative_int(fields, "length")
        if length == 0:
            raise _invalid("a delete needs a length greater than 0", "length")
        if fields.get("content", "") != "":
            raise _invalid("a delete takes no content", "content")
        content = ""
    else:
        if "length" not in fields:
            raise _invalid("length is required", "length")
        length = _non_negative_int(fields, "length")
        content = _content(fields, max_content_chars)
        if length == 0 and not content:
            raise _invalid("a replace with length 0 needs non-empty content", "content")

    return EditOp(cast(OpType, op_type), position, length, content, cast(OpOrigin, origin))


# --- operational transform -----------------------------------------------------------------
#
# A client op is carried through the applied ops as a "run": a stretch of the current text that
# starts at ``position``, made of segments the op must delete (an int: UTF-16 units of text the
# client saw) and segments it must keep (a str: text inserted concurrently inside the range,
# which the client never saw). The client's own content goes at the start of the run. Keeping
# the inserted text as text lets later applied ops edit or delete it, so chaining stays exact.
# At the end the run becomes one op: delete the whole run, insert content + kept text.

_Segment = int | str


def _seg_len(segment: _Segment) -> int:
    return segment if isinstance(segment, int) else utf16_length(segment)


def _cut(segments: list[_Segment], start: int, stop: int) -> list[_Segment]:
    """Remove the UTF-16 range [start, stop) (relative to the run) from the segments."""
    result: list[_Segment] = []
    offset = 0
    for segment in segments:
        size = _seg_len(segment)
        lo, hi = max(start, offset), min(stop, offset + size)
        if lo < hi:
            if isinstance(segment, int):
                segment = size - (hi - lo)
            else:
                a = utf16_to_index(segment, lo - offset)
                b = utf16_to_index(segment, hi - offset)
                segment = segment[:a] + segment[b:]
        offset += size
        if _seg_len(segment) > 0:
            result.append(segment)
    return result


def _split_insert(segments: list[_Segment], at: int, text: str) -> list[_Segment]:
    """Insert kept ``text`` at UTF-16 offset ``at`` (0 < at < span) of the run."""
    result: list[_Segment] = []
    offset = 0
    inserted = False
    for segment in segments:
        size = _seg_len(segment)
        if not inserted and offset < at < offset + size:
            cut = at - offset
            if isinstance(segment, int):
                result.extend([cut, text, size - cut])
            else:
                index = utf16_to_index(segment, cut)
                result.extend([segment[:index], text, segment[index:]])
            inserted = True
        else:
            if not inserted and offset == at:
                result.append(text)
                inserted = True
            result.append(segment)
        offset += size
    if not inserted:
        result.append(text)
    return result


@dataclass(slots=True)
class _Run:
    position: int
    segments: list[_Segment]
    content: str

    def span(self) -> int:
        """Length of the run in the current text (UTF-16 units)."""
        return sum(_seg_len(s) for s in self.segments)

    def through(self, applied: EditOp) -> None:
        """Move the run past one applied op: its deletion, then its insertion."""
        start = self.position
        if applied.length:
            a, b = applied.position, applied.end
            span = self.span()
            lo, hi = max(a, start), min(b, start + span)
            if lo < hi:
                self.segments = _cut(self.segments, lo - start, hi - start)
            self.position = start - max(0, min(b, start) - a)
        if applied.content:
            span = self.span()
            at = applied.position
            if at <= self.position:  # at the same point the applied insert stays first
                self.position += utf16_length(applied.content)
            elif at < self.position + span:
                self.segments = _split_insert(self.segments, at - self.position, applied.content)

    def to_op(self, origin: OpOrigin) -> EditOp | None:
        """The single op that does what is left of the run (``None`` if nothing is)."""
        segments = list(self.segments)
        position = self.position
        while segments and isinstance(segments[-1], str):
            segments.pop()  # kept text after the last deletion: outside the op
        if not segments:
            return EditOp.build(position, 0, self.content, origin)
        if not self.content:  # nothing to put before kept text at the start: skip over it
            while isinstance(first := segments[0], str):
                position += utf16_length(first)
                segments.pop(0)
        span = sum(_seg_len(s) for s in segments)
        kept = "".join(s for s in segments if isinstance(s, str))
        return EditOp.build(position, span, self.content + kept, origin)


def transform_through(op: EditOp, applied: Iterable[EditOp]) -> EditOp | None:
    """Transform a client op through ops the server applied since the client's revision.

    ``op`` was generated against an older text; ``applied`` are the ops applied to that text
    since, in order, each relative to the text left by the previous one. The result applies to
    the current text and keeps both intents: text the op deleted stays deleted, text the
    applied ops deleted is not deleted twice, concurrent insertions are kept, and the op's
    content appears. At the same position an already-applied insert stays first. Returns
    ``None`` if nothing is left to do (e.g. deleting text that is already gone).

    When a concurrent insertion lies strictly inside the op's deleted range, the single result
    op spans that insertion and re-inserts it after the op's own content (textually exact).
    """
    run = _Run(op.position, [op.length] if op.length else [], op.content)
    changed = False
    for applied_op in applied:
        run.through(applied_op)
        changed = True
    if not changed:
        return op
    result = run.to_op(op.origin)
    if result is not None and (result.position, result.length, result.content) == (
        op.position,
        op.length,
        op.content,
    ):
        return op
    return result


def transform(op: EditOp, against: EditOp) -> EditOp | None:
    """Transform ``op`` through one concurrent, already applied op (see
    :func:`transform_through`)."""
    return transform_through(op, (against,))
