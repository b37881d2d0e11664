"""A room: one live collaboration document on this node and the clients connected to it.

All document mutations run synchronously on the event loop (no ``await`` between validating a
change and applying it), so a room needs no lock: each change is atomic and gets the next
revision. Every change, whatever protocol it came from, goes through :meth:`Room.commit` which
numbers it, fans it out once-encoded to every other client, and hands it to the history writer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from crdt import Change, EditOp, PromptDocument
from crdt.codec import (
    AwarenessEntry,
    encode_awareness,
    encode_awareness_message,
    encode_sync_update,
)
from server.hub.connection import ClientConnection, WireProtocol, dumps
from storage.history_writer import HistoryEntry, HistoryWriter

logger = logging.getLogger(__name__)

# How many applied ops a room remembers for transforming JSON ops sent against older revisions.
OP_LOG_LIMIT = 10_000
# A history row carries a full-text checkpoint (content_after) at least this often.
CHECKPOINT_EVERY_EDITS = 100
CHECKPOINT_EVERY_CHARS = 64 * 1024


class StaleRevisionError(Exception):
    """A JSON op was based on a revision older than the room still remembers."""


@dataclass(slots=True)
class AwarenessState:
    """The latest awareness state of one awareness client id."""

    clock: int
    state: dict[str, Any]
    owner: ClientConnection


class Room:
    """One document being edited on this node."""

    def __init__(
        self,
        *,
        session_id: str,
        tenant_id: str | None,
        name: str,
        description: str | None,
        document: PromptDocument,
        writer: HistoryWriter,
        needs_snapshot: bool = False,
    ) -> None:
        self.session_id = session_id
        self.tenant_id = tenant_id
        self.name = name
        self.description = description
        self.document = document
        self.active = True
        self.rev = 0
        self._log: deque[tuple[int, EditOp]] = deque(maxlen=OP_LOG_LIMIT)
        self.connections: set[ClientConnection] = set()
        self.awareness: dict[int, AwarenessState] = {}
        self._writer = writer
        self._edits_since_checkpoint = 0
        self._chars_since_checkpoint = 0
        # The first edit after loading always records the text it started from.
        self._checkpoint_due = True
        if needs_snapshot:
            writer.mark_dirty(session_id, self.snapshot)

    # -- reading -----------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The document's current text."""
        return self.document.text

    def snapshot(self) -> tuple[bytes, str]:
        """The document's Yjs state and text, for persistence."""
        return self.document.full_state(), self.document.text

    def ops_since(self, rev: int) -> list[EditOp]:
        """The ops applied after revision ``rev`` (for transforming a JSON client's op)."""
        if rev > self.rev or rev < 0:
            raise ValueError(f"revision {rev} is not between 0 and {self.rev}")
        if rev == self.rev:
            return []
        oldest = self._log[0][0] if self._log else self.rev + 1
        if rev + 1 < oldest:
            raise StaleRevisionError(f"revision {rev} is too old; reload the document")
        return [op for r, op in self._log if r > rev]

    # -- membership ----------------------------------------------------------------------------

    def add(self, conn: ClientConnection) -> None:
        """Register a connection and tell JSON clients someone joined."""
        self.connections.add(conn)
        self.broadcast_json(
            {
                "type": "presence",
                "event": "join",
                "user_id": conn.user_id,
                "name": conn.principal.name,
                "color": conn.principal.color,
                "role": conn.role,
                "client_id": conn.awareness_client_id,
            },
            exclude=conn,
        )

    def remove(self, conn: ClientConnection) -> None:
        """Forget a connection, retract its awareness states and tell everyone it left."""
        self.connections.discard(conn)
        removed: list[AwarenessEntry] = []
        for client_id, known in list(self.awareness.items()):
            if known.owner is conn:
                del self.awareness[client_id]
                removed.append(AwarenessEntry(client_id, known.clock + 1, None))
        if removed:
            self.broadcast_yjs(encode_awareness_message(encode_awareness(removed)))
        for entry in removed:
            self.broadcast_json(
                {
                    "type": "presence",
                    "event": "remove",
                    "user_id": conn.user_id,
                    "client_id": entry.client_id,
                    "state": None,
                }
            )
        self.broadcast_json(
            {
                "type": "presence",
                "event": "leave",
                "user_id": conn.user_id,
                "client_id": conn.awareness_client_id,
            }
        )

    # -- fan-out -------------------------------------------------------------------------------

    def broadcast_yjs(self, frame: bytes, *, exclude: ClientConnection | None = None) -> None:
        """Send one already-encoded binary frame to every Yjs client but ``exclude``."""
        for conn in self.connections:
            if conn is not exclude and conn.protocol is WireProtocol.YJS:
                conn.send(frame)

    def broadcast_json(
        self, message: dict[str, Any], *, exclude: ClientConnection | None = None
    ) -> None:
        """Encode a JSON message once and send it to every JSON client but ``exclude``."""
        targets = [
            c for c in self.connections if c is not exclude and c.protocol is WireProtocol.JSON
        ]
        if not targets:
            return
        text = dumps(message)
        for conn in targets:
            conn.send(text)

    # -- changes -------------------------------------------------------------------------------

    def commit(
        self, change: Change, *, user_id: str, author: ClientConnection | None
    ) -> tuple[int, asyncio.Future[list[int]]]:
        """Number an applied change, fan it out, and queue its history rows.

        Returns the revision of the change's last op and a future that resolves when its history
        rows are committed (JSON acks wait on it).
        """
        if not change.ops and not change.update:
            return self.rev, self.commit_nothing()
        if change.update:
            self.broadcast_yjs(encode_sync_update(change.update), exclude=author)
        json_targets = [
            c for c in self.connections if c is not author and c.protocol is WireProtocol.JSON
        ]
        entries: list[HistoryEntry] = []
        checkpoint = self._take_checkpoint(change)
        for index, op in enumerate(change.ops):
            self.rev += 1
            self._log.append((self.rev, op))
            operation = op.to_json()
            if json_targets:
                text = dumps({"type": "op", "rev": self.rev, "op": operation, "user_id": user_id})
                for conn in json_targets:
                    conn.send(text)
            entries.append(
                HistoryEntry(
                    session_id=self.session_id,
                    user_id=user_id,
                    operation=operation,
                    content_before=change.content_before if checkpoint and index == 0 else None,
                    content_after=(
                        change.content_after
                        if checkpoint and index == len(change.ops) - 1
                        else None
                    ),
                )
            )
        future = self._writer.submit(self.session_id, entries, self.snapshot)
        return self.rev, future

    def _take_checkpoint(self, change: Change) -> bool:
        """Whether this change's rows carry the full text (see README: edit history)."""
        self._edits_since_checkpoint += len(change.ops)
        self._chars_since_checkpoint += sum(len(op.content) + op.length for op in change.ops)
        due = (
            self._checkpoint_due
            or self._edits_since_checkpoint >= CHECKPOINT_EVERY_EDITS
            or self._chars_since_checkpoint >= CHECKPOINT_EVERY_CHARS
        )
        if due and change.ops:
            self._checkpoint_due = False
            self._edits_since_checkpoint = 0
            self._chars_since_checkpoint = 0
            return True
        return False

    def require_checkpoint(self) -> None:
        """Make the next change record its full text (after a change that wrote no history)."""
        self._checkpoint_due = True

    @staticmethod
    def commit_nothing() -> asyncio.Future[list[int]]:
        """An already-resolved durability future, for a change that changed nothing."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        future.set_result([])
        return future

    # -- awareness -----------------------------------------------------------------------------

    def apply_awareness(
        self, owner: ClientConnection, entries: Iterable[AwarenessEntry]
    ) -> list[AwarenessEntry]:
        """Record awareness entries from a client; returns those that were new information."""
        accepted: list[AwarenessEntry] = []
        for entry in entries:
            known = self.awareness.get(entry.client_id)
            if known is not None and known.owner is not owner:
                continue  # one client may not overwrite another's awareness state
            if known is not None and entry.clock < known.clock:
                continue
            if entry.state is None:
                if known is not None:
                    del self.awareness[entry.client_id]
                owner.yjs_client_ids.discard(entry.client_id)
            else:
                self.awareness[entry.client_id] = AwarenessState(entry.clock, entry.state, owner)
                if owner.protocol is WireProtocol.YJS:
                    owner.yjs_client_ids.add(entry.client_id)
            accepted.append(entry)
        return accepted

    def awareness_entries(self) -> list[AwarenessEntry]:
        """Every known awareness state, for a client that just connected or asked."""
        return [AwarenessEntry(cid, s.clock, s.state) for cid, s in self.awareness.items()]

    def presence_list(self) -> list[dict[str, Any]]:
        """Every known awareness state in the JSON protocol's shape."""
        return [
            {"client_id": cid, "user_id": s.owner.user_id, "state": s.state}
            for cid, s in self.awareness.items()
        ]

    def connections_of(self, user_id: str) -> list[ClientConnection]:
        """This user's open connections in the room."""
        return [c for c in self.connections if c.user_id == user_id]
