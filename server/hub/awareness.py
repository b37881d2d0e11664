"""A room's awareness (who is here, where their cursor is), bounded so no client can flood it.

The rules, all enforced before anything is stored or sent on:

* A local connection owns its server-assigned client id (the one JSON clients speak for) and
  the ids it announces itself, at most ``ids_per_connection`` of them. Its entries for any other
  id — another connection's, another node's, or one more id beyond its cap — are dropped: one
  client can never overwrite or remove another's state.
* A message declaring more than ``entries_per_message`` entries is dropped whole, unread.
* The room holds at most ``states_per_room`` states; a new id beyond that is dropped.
* A state larger than ``state_bytes`` (its JSON) or nested deeper than ``state_depth`` is dropped.

Everything is dropped, never closed: a stock y-websocket client re-broadcasts every awareness
change it applies, other clients' states included (the whole room's after it joins), so
entries that are not its own are routine and must be ignored, not punished. A client's own
entries come one per message, well within every cap. Refusals of a client's own entries are
logged once per connection (a message of too many entries only at debug level: a stock client
echoes a big room's states when it joins). So one accepted message holds at most a handful of
entries and its fan-out costs O(its size), whatever the frame carried.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from crdt import ProtocolError
from crdt.codec import (
    AwarenessEntry,
    Decoder,
    MessageType,
    encode_awareness,
    encode_awareness_message,
)
from server.hub.connection import ClientConnection
from server.hub.wire import WireMessage
from server.settings import Settings

logger = logging.getLogger(__name__)

# Awareness states from other nodes that are not renewed within this time are dropped (Yjs
# clients renew every 15 s and drop peers after 30 s; this matches them).
REMOTE_AWARENESS_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class AwarenessLimits:
    """The caps of one room's awareness (see the module docstring)."""

    ids_per_connection: int
    entries_per_message: int
    states_per_room: int
    state_bytes: int
    state_depth: int

    @classmethod
    def from_settings(cls, settings: Settings) -> AwarenessLimits:
        """The limits configured for this server."""
        return cls(
            ids_per_connection=settings.awareness_ids_per_connection,
            entries_per_message=settings.awareness_entries_per_message,
            states_per_room=settings.awareness_states_per_room,
            state_bytes=settings.awareness_state_bytes,
            state_depth=settings.awareness_state_depth,
        )


DEFAULT_LIMITS = AwarenessLimits.from_settings(Settings())


@dataclass(frozen=True, slots=True)
class DecodedAwareness:
    """The entries of an awareness frame worth considering, and why any of them were
    left out (a state too large or too deep)."""

    entries: list[AwarenessEntry]
    refused: str | None = None


def decode_awareness_frame(frame: bytes, limits: AwarenessLimits) -> DecodedAwareness:
    """Decode a y-websocket awareness frame (type 1) within ``limits``.

    A message of too many entries is refused after reading its count; an entry whose state is
    too large is skipped without parsing it, one nested too deeply after. The frame's structure
    is still checked strictly.

    Raises:
        ProtocolError: the frame is malformed, or a state is not a JSON object (or null).
    """
    decoder = Decoder(frame)
    if decoder.read_var_uint("message type") != MessageType.AWARENESS:
        raise ProtocolError("not an awareness message")
    length = decoder.read_var_uint("awareness update length")
    if length != decoder.remaining:
        raise ProtocolError(f"awareness update declares {length} bytes, {decoder.remaining} remain")
    count = decoder.read_var_uint("awareness entry count")
    if count > limits.entries_per_message:
        # Not worth a warning: a stock client echoes the states of a big room when it joins.
        logger.debug("dropping an awareness message of %d entries unread", count)
        return DecodedAwareness([])
    if count > decoder.remaining // 3:  # every entry takes at least three bytes
        raise ProtocolError(f"awareness update declares {count} entries but is too short")
    entries: list[AwarenessEntry] = []
    refused: str | None = None
    for _ in range(count):
        client_id = decoder.read_var_uint("awareness client id")
        clock = decoder.read_var_uint("awareness clock")
        raw = decoder.read_var_bytes("awareness state")
        if len(raw) > limits.state_bytes:
            refused = f"a state of {len(raw)} bytes (limit {limits.state_bytes})"
            continue
        state = _parse_state(client_id, raw, limits.state_depth)
        if state is _TOO_DEEP:
            refused = f"a state nested deeper than {limits.state_depth} levels"
            continue
        entries.append(AwarenessEntry(client_id, clock, state))
    decoder.expect_end("awareness update")
    return DecodedAwareness(entries, refused)


_TOO_DEEP: Any = object()


def _parse_state(client_id: int, raw: bytes, max_depth: int) -> Any:
    """The state as a dict (or None for a removal), or ``_TOO_DEEP``."""
    try:
        state = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        return _TOO_DEEP
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"awareness state of client {client_id} is not JSON") from exc
    if state is not None and not isinstance(state, dict):
        raise ProtocolError(f"awareness state of client {client_id} is not an object")
    if state is not None and not nested_within(state, max_depth):
        return _TOO_DEEP
    return state


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def nested_within(value: Any, max_depth: int) -> bool:
    """Whether ``value`` nests objects and arrays at most ``max_depth`` levels deep (walked
    without recursion, so no depth can overflow the stack)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > max_depth:
            return False
        children = item.values() if isinstance(item, dict) else item
        pending.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return True


@dataclass(slots=True)
class AwarenessState:
    """The latest awareness state of one client id.

    ``owner`` is the local connection that announced it, or None for a client of another node.
    """

    clock: int
    state: dict[str, Any]
    owner: ClientConnection | None
    user_id: str
    updated_at: float


class RoomAwareness:
    """The awareness states of one room, who owns which id, and the caps on both."""

    def __init__(self, limits: AwarenessLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.states: dict[int, AwarenessState] = {}
        # Which local connection owns an id (its state may be absent: removed, not yet set).
        self._owner_of: dict[int, ClientConnection] = {}
        # The ids each connection announced itself (its server-assigned id not included).
        self._announced: dict[ClientConnection, set[int]] = {}
        self._warned: set[ClientConnection] = set()
        # Every state as one awareness frame, for joiners and queries; rebuilt after a change.
        self._snapshot: WireMessage | None = None

    def reserve(self, conn: ClientConnection) -> None:
        """Give a new connection its server-assigned id, before anyone else can claim it."""
        if self._owner_of.setdefault(conn.awareness_client_id, conn) is not conn:
            logger.warning("awareness id of connection %s is already taken", conn.id)

    def release(self, conn: ClientConnection) -> list[AwarenessEntry]:
        """Forget a connection that left: its ids, and its states (returned as removals)."""
        ids = self._announced.pop(conn, set())
        ids.add(conn.awareness_client_id)
        self._warned.discard(conn)
        removed: list[AwarenessEntry] = []
        for client_id in ids:
            if self._owner_of.get(client_id) is not conn:
                continue
            del self._owner_of[client_id]
            known = self.states.pop(client_id, None)
            if known is not None:
                removed.append(AwarenessEntry(client_id, known.clock + 1, None))
        if removed:
            self._snapshot = None
        return removed

    def refuse(self, conn: ClientConnection, reason: str) -> None:
        """Note that a client's own entries were dropped (logged once per connection)."""
        if conn not in self._warned:
            self._warned.add(conn)
            logger.warning("dropping awareness of connection %s: %s", conn.id, reason)

    def record(
        self, owner: ClientConnection | None, user_id: str, entries: list[AwarenessEntry]
    ) -> list[AwarenessEntry]:
        """Store the entries ``owner`` (None: another node) may set; return those that were news."""
        accepted: list[AwarenessEntry] = []
        now = time.monotonic()
        for entry in entries:
            if not self._may_set(owner, entry):
                continue
            known = self.states.get(entry.client_id)
            if known is not None and entry.clock < known.clock:
                continue  # older than what we have
            if entry.state is None:
                if known is None:
                    continue
                del self.states[entry.client_id]
            elif known is None and len(self.states) >= self.limits.states_per_room:
                if owner is not None:
                    self.refuse(owner, f"the room holds {len(self.states)} states already")
                continue
            else:
                self.states[entry.client_id] = AwarenessState(
                    entry.clock, entry.state, owner, user_id, now
                )
            accepted.append(entry)
        if accepted:
            self._snapshot = None
        return accepted

    def _may_set(self, owner: ClientConnection | None, entry: AwarenessEntry) -> bool:
        """Whether ``owner`` may change this id's state, claiming the id if it is free."""
        client_id = entry.client_id
        holder = self._owner_of.get(client_id)
        if holder is not None:
            return holder is owner
        known = self.states.get(client_id)
        if owner is None:
            return True  # another node's client (local ids are never set from outside)
        if known is not None or entry.state is None:
            return False  # another node's client, or a removal of what nobody has
        announced = self._announced.setdefault(owner, set())
        if len(announced) >= self.limits.ids_per_connection:
            self.refuse(owner, f"more than {self.limits.ids_per_connection} client ids")
            return False
        announced.add(client_id)
        self._owner_of[client_id] = owner
        return True

    def expired(self, now: float) -> dict[str, list[AwarenessEntry]]:
        """Removals of other nodes' states not renewed in time, grouped by user."""
        by_user: dict[str, list[AwarenessEntry]] = {}
        for client_id, known in self.states.items():
            if known.owner is None and now - known.updated_at > REMOTE_AWARENESS_TIMEOUT_SECONDS:
                by_user.setdefault(known.user_id, []).append(
                    AwarenessEntry(client_id, known.clock + 1, None)
                )
        return by_user

    def entries(self) -> list[AwarenessEntry]:
        """Every known state, for a client that just connected or asked."""
        return [AwarenessEntry(cid, s.clock, s.state) for cid, s in self.states.items()]

    def snapshot(self) -> WireMessage:
        """Every known state as one y-websocket awareness frame.

        Encoded once per change, not per request: a query-awareness frame is one byte, and
        answering it must not cost the whole room's encoding each time.
        """
        if self._snapshot is None:
            self._snapshot = WireMessage(encode_awareness_message(encode_awareness(self.entries())))
        return self._snapshot

    def local_by_user(self) -> dict[str, list[AwarenessEntry]]:
        """This node's clients' states, grouped by user (for a peer that syncs)."""
        grouped: dict[str, list[AwarenessEntry]] = {}
        for cid, s in self.states.items():
            if s.owner is not None:
                grouped.setdefault(s.user_id, []).append(AwarenessEntry(cid, s.clock, s.state))
        return grouped

    def presence_list(self) -> list[dict[str, Any]]:
        """Every known state in the JSON protocol's shape."""
        return [
            {"client_id": cid, "user_id": s.user_id, "state": s.state}
            for cid, s in self.states.items()
        ]
