"""Edit markers: the short ASCII token each edit inserts, so receivers can tell edits apart.

A marker is ``[c<client>e<seq>]`` (e.g. ``[c12e345]``): the global client id of its author and
the author's edit number. Inserted text is scanned for markers. Yjs clients never insert inside
another marker (:func:`outside_markers`): a server may merge several clients' updates into one
frame, and an insert inside a marker would split that marker's item in the merged update, so
its bytes would no longer be contiguous and the edit would look lost.
"""

from __future__ import annotations

import re

_MARKER = re.compile(r"\[c(\d+)e(\d+)\]")
_MARKER_BYTES = re.compile(rb"\[c(\d+)e(\d+)\]")


def marker(client_id: int, seq: int) -> str:
    """The marker text of edit ``seq`` by client ``client_id``."""
    return f"[c{client_id}e{seq}]"


def find_markers(text: str) -> list[tuple[int, int]]:
    """Every ``(client_id, seq)`` whose marker occurs in ``text``, in order."""
    if "[c" not in text:
        return []
    return [(int(m.group(1)), int(m.group(2))) for m in _MARKER.finditer(text)]


def find_marker_bytes(data: bytes) -> list[tuple[int, int]]:
    """Every marker in encoded bytes (a Yjs update stores inserted strings as UTF-8)."""
    if b"[c" not in data:
        return []
    return [(int(m.group(1)), int(m.group(2))) for m in _MARKER_BYTES.finditer(data)]


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
