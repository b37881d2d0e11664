"""Edit markers: the short ASCII token each edit inserts, so receivers can tell edits apart.

A marker is ``[c<client>e<seq>]`` (e.g. ``[c12e345]``): the global client id of its author and
the author's edit number. JSON clients find markers in the content of the ops they receive.

Yjs clients tell arrivals by their document's state vector instead (:class:`EditClocks`): each
generator client writes under the Yjs client id ``client + 1`` and every edit is one insert of
its marker, so its clock advances by exactly the marker's length, and the clock a receiver's
state vector shows for an author says how many of that author's edits it has integrated. That
costs the same however large the document grows, and holds however a server merges or splits
updates. (The ``delta`` observer still reads inserted markers; its clients never insert inside
another marker, :func:`outside_markers`, so a marker is never split in the text.)
"""

from __future__ import annotations

import re

_MARKER = re.compile(r"\[c(\d+)e(\d+)\]")


def marker(client_id: int, seq: int) -> str:
    """The marker text of edit ``seq`` by client ``client_id``."""
    return f"[c{client_id}e{seq}]"


def find_markers(text: str) -> list[tuple[int, int]]:
    """Every ``(client_id, seq)`` whose marker occurs in ``text``, in order."""
    if "[c" not in text:
        return []
    return [(int(m.group(1)), int(m.group(2))) for m in _MARKER.finditer(text)]


def outside_markers(text: str, position: int) -> int:
    """``position``, moved past the end of a marker if it falls inside one.

    Markers are never nested (every insert goes through this), so the nearest ``[`` and ``]``
    before ``position`` tell whether it is inside one. Markers are ASCII, so string indices and
    UTF-8 offsets agree for the marker-only documents the load generator builds.
    """
    opening = text.rfind("[", 0, position)
    if opening > text.rfind("]", 0, position):
        return text.index("]", position) + 1
    return position


def yjs_client_id(client_id: int) -> int:
    """The Yjs client id a generator client writes under (0 is not a valid Yjs client id)."""
    return client_id + 1


class EditClocks:
    """Per author: which of their edits a state vector's clock covers, counted once."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        # author -> (the next edit not yet seen, the author's clock once it is integrated)
        self._next: dict[int, tuple[int, int]] = {}

    def covered(self, author: int, clock: int) -> range:
        """The author's edits newly covered by ``clock`` (their clock in a state vector)."""
        seq, end = self._next.get(author, (0, len(marker(author, 0))))
        first = seq
        while end <= clock:
            seq += 1
            end += len(marker(author, seq))
        self._next[author] = (seq, end)
        return range(first, seq)


def decode_state_vector(data: bytes) -> dict[int, int]:
    """A Yjs state vector (``varuint count``, then ``varuint client, varuint clock`` pairs).

    Not :class:`crdt.codec.Decoder`: this runs after every update every generator client
    applies, and one loop over the bytes costs a third of the Decoder's checked reads.
    """
    values: list[int] = []
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            continue
        values.append(value)
        value = shift = 0
    count = values[0] if values else 0
    if len(values) != 1 + 2 * count:
        raise ValueError("malformed state vector")
    return dict(zip(values[1::2], values[2::2], strict=True))
