"""Edit markers: the short ASCII token each edit inserts, so receivers can tell edits apart.

A marker is ``[c<client>e<seq>]`` (e.g. ``[c12e345]``): the global client id of its author and
the author's edit number. Inserted text is scanned for markers; because edits land at random
positions, a marker may be inserted *inside* another one in the document, but each update or
JSON op carries its inserted text on its own, so scanning the inserted text finds it whole.
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
