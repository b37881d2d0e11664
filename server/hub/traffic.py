"""Message counts of one hub, read by ``/metrics`` at scrape time (see :mod:`server.metrics`).

The relay path is the hot path: counting a message costs one dict increment there, and the
labels are a small closed set (protocol, message type) so a client cannot grow it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

# The y-websocket message types (the first varuint of a frame); any other is counted as "other".
YJS_MESSAGE_TYPES = {0: "sync", 1: "awareness", 2: "auth", 3: "query_awareness"}
# The JSON protocol's message types, both directions; any other is counted as "other".
JSON_MESSAGE_TYPES = frozenset(
    {
        "op",
        "presence",
        "ping",
        "pong",
        "resync",
        "welcome",
        "ack",
        "error",
        "role",
        "published",
    }
)


def yjs_type(frame: bytes) -> str:
    """The label of a binary frame's message type."""
    return YJS_MESSAGE_TYPES.get(frame[0], "other") if frame else "other"


def json_type(kind: object) -> str:
    """The label of a JSON message's ``type`` (unknown or non-string types are "other")."""
    return kind if isinstance(kind, str) and kind in JSON_MESSAGE_TYPES else "other"


class Traffic:
    """Messages received and sent by type, and the fan-out latency observer."""

    __slots__ = ("inbound", "on_fanout", "outbound")

    def __init__(self) -> None:
        # (protocol, type) -> messages; defaultdict so counting is a single `+= n`.
        self.inbound: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.outbound: defaultdict[tuple[str, str], int] = defaultdict(int)
        # Called with the seconds between a tick's first Yjs update and its broadcast.
        self.on_fanout: Callable[[float], None] | None = None
