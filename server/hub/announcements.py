"""Server announcements in a room: events every client of a session should see.

JSON clients get a message of the event's type (e.g. ``{"type": "published", …}``). Yjs
clients have no such message, so the server shows the event in the room's awareness under its
own awareness client id (one per node): a state ``{"user": {"name": "Prompt Studio"}, "server":
true, "<type>": {…}}``. Like any awareness state not renewed, Yjs clients drop it after 30 s;
it is a notification, not a stored fact.
"""

from __future__ import annotations

import itertools
import zlib
from typing import Any

from crdt.codec import AwarenessEntry
from server.hub.room import Room

#: The user id the server's awareness state is recorded under.
SERVER_USER_ID = "prompt-studio-server"
SERVER_NAME = "Prompt Studio"
SERVER_COLOR = "#6B7280"

# Awareness clocks must grow per client id; one counter per process serves every room.
_clock = itertools.count(1)


def server_client_id(node_id: str | None) -> int:
    """This node's awareness client id (a stable 31-bit number, like a Yjs client id)."""
    return zlib.crc32(f"{SERVER_USER_ID}:{node_id or ''}".encode()) & 0x7FFFFFFF


def announce(room: Room, kind: str, event: dict[str, Any]) -> None:
    """Tell every client of ``room`` on this node about ``event`` (see the module docstring)."""
    room.broadcast_json({"type": kind, **event})
    state = {"user": {"name": SERVER_NAME, "color": SERVER_COLOR}, "server": True, kind: event}
    entry = AwarenessEntry(server_client_id(room.node_id), next(_clock), state)
    room.update_awareness(None, SERVER_USER_ID, [entry])
