"""A room: one live collaboration document on this node and the clients connected to it.

All document mutations run synchronously on the event loop (no ``await`` between validating a
change and applying it), so a room needs no lock: each change is atomic and gets the next
revision. Every change made on this node, whatever protocol it came from, goes through
:meth:`Room.commit`, which numbers it, fans it out once-encoded to every other client, hands it
to the history writer and to the other nodes. A change from another node goes through
:meth:`Room.apply_remote_update`: fanned out to local clients, but neither recorded nor
republished (its own node did that).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

from crdt import Change, EditOp, PromptDocument, UpdateError
from crdt.codec import (
    AwarenessEntry,
    encode_awareness,
    encode_awareness_message,
    encode_sync_update,
)
from crdt.merge import merge_updates
from server.hub.awareness import DEFAULT_LIMITS, AwarenessLimits, RoomAwareness
from server.hub.connection import ClientConnection, WireProtocol, dumps
from server.hub.op_ids import OpLedger
from server.hub.traffic import Traffic, json_type, yjs_type
from server.hub.wire import WireMessage
from storage.history_writer import HistoryEntry, HistoryWriter

logger = logging.getLogger(__name__)

# How many applied ops a room remembers for transforming JSON ops sent against older revisions.
OP_LOG_LIMIT = 10_000
# A history row carries a full-text checkpoint (content_after) at least this often.
CHECKPOINT_EVERY_EDITS = 100
CHECKPOINT_EVERY_CHARS = 64 * 1024


class StaleRevisionError(Exception):
    """A JSON op was based on a revision older than the room still remembers."""


class Peers(Protocol):
    """The other nodes serving this document (see :mod:`server.hub.cluster`)."""

    def publish_update(self, user_id: str | None, update: bytes) -> None:
        """Send a Yjs update made on this node to the other nodes."""

    def publish_awareness(self, user_id: str, payload: bytes) -> None:
        """Send awareness entries of a local client to the other nodes."""

    def publish_op_landed(self, user_id: str, op_id: str, digest: str) -> None:
        """Tell the other nodes a local JSON client's op with this op id was applied."""


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
        node_id: str | None = None,
        log_remote_updates: bool = False,
        awareness_limits: AwarenessLimits = DEFAULT_LIMITS,
        op_ids_per_user: int = 100,
        op_id_max_chars: int = 64,
        traffic: Traffic | None = None,
        max_document_bytes: int | None = None,
    ) -> None:
        self.session_id = session_id
        # The hub's message counts (shared by its rooms; see server.metrics).
        self.traffic = traffic if traffic is not None else Traffic()
        # The bound on the text's UTF-8 size (server.hub.doc_size); None: unbounded.
        self.max_document_bytes = max_document_bytes
        self.tenant_id = tenant_id
        self.name = name
        self.description = description
        self.document = document
        self.node_id = node_id
        self.active = True
        self.rev = 0
        self.peers: Peers | None = None
        self._log: deque[tuple[int, EditOp]] = deque(maxlen=OP_LOG_LIMIT)
        self.connections: set[ClientConnection] = set()
        self.awareness = RoomAwareness(awareness_limits)
        # JSON clients' op ids already applied, so a resent op is not applied twice.
        self.ops = OpLedger(op_ids_per_user, op_id_max_chars)
        # The session's members by user id: read from the database at the first join, then
        # kept current by joins and control events (re-read after :meth:`invalidate_roster`).
        self.roster: dict[str, dict[str, str | None]] = {}
        self.roster_loaded = False
        # Yjs updates applied during this event-loop tick, broadcast together at its end.
        self._outgoing: list[tuple[bytes, ClientConnection | None]] = []
        self._outgoing_since = 0.0
        self._writer = writer
        self._edits_since_checkpoint = 0
        self._chars_since_checkpoint = 0
        # The first edit after loading always records the text it started from.
        self._checkpoint_due = True
        # With several nodes, every node also persists the updates it receives from the others:
        # updates are idempotent, and storage then never depends on one node surviving.
        self._log_remote_updates = log_remote_updates

    # -- reading -----------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The document's current text."""
        return self.document.text

    def ops_since(self, rev: int) -> list[EditOp]:
        """The ops applied after revision ``rev`` (for transforming a JSON client's op)."""
        if rev > self.rev or rev < 0:
            raise ValueError(f"revision {rev} is not between 0 and {self.rev}")
        if rev == self.rev:
            return []
        missed = self.rev - rev
        if missed > len(self._log):
            raise StaleRevisionError(f"revision {rev} is too old; reload the document")
        # The log holds consecutive revisions ending at self.rev: take its last `missed` ops
        # from the right end (O(missed), not O(log size): this runs for every JSON op).
        newest_first = itertools.islice(reversed(self._log), missed)
        return [op for _, op in newest_first][::-1]

    def set_roster(self, members: Iterable[dict[str, str | None]]) -> None:
        """Replace the member roster (as read from the database)."""
        self.roster = {str(m["user_id"]): m for m in members}
        self.roster_loaded = True

    def note_member(self, user_id: str, name: str, color: str, role: str) -> None:
        """Record a member as of their join (new members are appended, like the database's
        join order)."""
        self.roster[user_id] = {"user_id": user_id, "name": name, "color": color, "role": role}

    def invalidate_roster(self) -> None:
        """The roster may miss a change (e.g. a member added elsewhere): re-read it next join."""
        self.roster_loaded = False

    def connections_of(self, user_id: str) -> list[ClientConnection]:
        """This user's open connections in the room."""
        return [c for c in self.connections if c.user_id == user_id]

    # -- membership ----------------------------------------------------------------------------

    def add(self, conn: ClientConnection) -> None:
        """Register a connection and tell JSON clients someone joined."""
        self.connections.add(conn)
        self.awareness.reserve(conn)
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
        removed = self.awareness.release(conn)
        if removed:
            self._announce_awareness(conn, conn.user_id, removed)
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
        """Send one binary message to every Yjs client but ``exclude``, framed once for all."""
        message = WireMessage(frame)
        sent = 0
        for conn in self.connections:
            if conn is not exclude and conn.protocol is WireProtocol.YJS:
                conn.send(message)
                sent += 1
        if sent:
            self.traffic.outbound["yjs", yjs_type(frame)] += sent

    def broadcast_json(
        self, message: dict[str, Any], *, exclude: ClientConnection | None = None
    ) -> None:
        """Encode a JSON message once and send it to every JSON client but ``exclude``."""
        targets = [
            c for c in self.connections if c is not exclude and c.protocol is WireProtocol.JSON
        ]
        if not targets:
            return
        wire = WireMessage(dumps(message))
        for conn in targets:
            conn.send(wire)
        self.traffic.outbound["json", json_type(message.get("type"))] += len(targets)

    def _fan_out(
        self, change: Change, *, user_id: str | None, author: ClientConnection | None
    ) -> list[dict[str, Any]]:
        """Number the change's ops and send the change to every client but its author."""
        if change.update:
            self._queue_yjs_update(change.update, author)
        json_targets = [
            c for c in self.connections if c is not author and c.protocol is WireProtocol.JSON
        ]
        # The op log exists for transforming JSON clients' ops. Without any JSON client it is
        # not kept (a JSON client that joins starts from the revision it is welcomed at), which
        # also spares the garbage collector 10,000 long-lived ops per busy room.
        keep_log = bool(json_targets) or (
            author is not None and author.protocol is WireProtocol.JSON
        )
        if not keep_log and self._log:
            self._log.clear()
        operations = []
        for op in change.ops:
            self.rev += 1
            if keep_log:
                self._log.append((self.rev, op))
            operation = op.to_json()
            operations.append(operation)
            if json_targets:
                wire = WireMessage(
                    dumps({"type": "op", "rev": self.rev, "op": operation, "user_id": user_id})
                )
                for conn in json_targets:
                    conn.send(wire)
        if json_targets:
            self.traffic.outbound["json", "op"] += len(json_targets) * len(operations)
        return operations

    def _queue_yjs_update(self, update: bytes, author: ClientConnection | None) -> None:
        """Broadcast at the end of this event-loop tick, merged with the tick's other updates.

        Under load many updates land in one tick; merging them sends one frame per client
        instead of one per update. Yjs applies updates idempotently, so when a merged frame
        holds several authors' updates it goes to all of them too (as the reference server
        sends every update to every client).
        """
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush_yjs_updates)
            self._outgoing_since = time.perf_counter()
        self._outgoing.append((update, author))

    def _flush_yjs_updates(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if not outgoing:
            return
        authors = {author for _, author in outgoing}
        exclude = authors.pop() if len(authors) == 1 else None
        if len(outgoing) == 1:
            update = outgoing[0][0]
        else:
            try:
                update = merge_updates([u for u, _ in outgoing])
            except UpdateError:
                logger.exception(
                    "could not merge updates of %s; sending them one by one", self.session_id
                )
                for single, author in outgoing:
                    self.broadcast_yjs(encode_sync_update(single), exclude=author)
                return
        self.broadcast_yjs(encode_sync_update(update), exclude=exclude)
        if self.traffic.on_fanout is not None:
            self.traffic.on_fanout(time.perf_counter() - self._outgoing_since)

    # -- changes -------------------------------------------------------------------------------

    def commit(
        self,
        change: Change,
        *,
        user_id: str,
        author: ClientConnection | None,
        client_op: tuple[str, str] | None = None,
    ) -> tuple[int, asyncio.Future[list[int]]]:
        """Number a change made on this node, fan it out, record it and tell the other nodes.

        ``client_op`` is a JSON client's (op id, digest) for the op, stored on its last row.
        Returns the revision of the change's last op and a future that resolves when its history
        rows are committed (JSON acks wait on it).
        """
        if not change.ops and not change.update:
            return self.rev, self.commit_nothing()
        operations = self._fan_out(change, user_id=user_id, author=author)
        if change.update and self.peers is not None:
            self.peers.publish_update(user_id, change.update)
            if client_op is not None:
                self.peers.publish_op_landed(user_id, *client_op)
        checkpoint = self._take_checkpoint(change)
        last = len(operations) - 1
        entries = [
            HistoryEntry(
                session_id=self.session_id,
                user_id=user_id,
                operation=operation,
                content_before=change.content_before if checkpoint and index == 0 else None,
                content_after=change.content_after if checkpoint and index == last else None,
                node_id=self.node_id,
                client_op_id=client_op[0] if client_op and index == last else None,
                client_op_digest=client_op[1] if client_op and index == last else None,
            )
            for index, operation in enumerate(operations)
        ]
        # A JSON client's ack and a server-side edit's caller wait for the commit; a Yjs
        # client's update is acknowledged by nobody, so its commit may linger to batch more.
        awaited = author is None or author.protocol is WireProtocol.JSON
        future = self._writer.submit(self.session_id, entries, change.update, awaited=awaited)
        return self.rev, future

    def apply_remote_update(self, update: bytes, *, user_id: str | None) -> None:
        """Apply an update made on another node: fan it out locally, record nothing.

        Its text ops are needed only by JSON clients (op frames, and the op log their ops are
        transformed through); without any here, the update is integrated without computing
        them (pycrdt's text delta walks the whole document). A JSON client that joins later
        starts from the revision it is welcomed at, so it never needs the skipped ops.
        """
        try:
            if any(c.protocol is WireProtocol.JSON for c in self.connections):
                change = self.document.apply_update(update, origin="sync")
                integrated, text_changed = change.update, bool(change.ops)
                if integrated:
                    self._fan_out(change, user_id=user_id, author=None)
            else:
                integrated, text_changed = self.document.integrate_update(update)
                if integrated:
                    self._queue_yjs_update(integrated, None)
        except UpdateError as exc:
            logger.warning("dropping an update from a peer for %s: %s", self.session_id, exc)
            return
        if text_changed:
            # Our next recorded edit is relative to text this node did not write itself.
            self.require_checkpoint()
        if integrated and self._log_remote_updates:
            self._writer.log_update(self.session_id, integrated)

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

    def admit_edit(self) -> bool:
        """Whether a change may be applied now. False while the history writer's backlog is
        full: the intake must then refuse the change before applying it (see
        :meth:`HistoryWriter.admit`), so nothing relayed or acknowledged goes unstored."""
        return self._writer.admit()

    @staticmethod
    def commit_nothing() -> asyncio.Future[list[int]]:
        """An already-resolved durability future, for a change that changed nothing."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        future.set_result([])
        return future

    # -- awareness -----------------------------------------------------------------------------

    def update_awareness(
        self, owner: ClientConnection | None, user_id: str, entries: list[AwarenessEntry]
    ) -> list[AwarenessEntry]:
        """Record awareness entries (from a local client, or another node when ``owner`` is
        None), tell every other client, and — for local ones — the other nodes.

        Returns the entries that were news; the rest (stale, another owner's id, over a cap:
        see :mod:`server.hub.awareness`) are dropped.
        """
        accepted = self.awareness.record(owner, user_id, entries)
        if accepted:
            self._announce_awareness(owner, user_id, accepted)
        return accepted

    def _announce_awareness(
        self, owner: ClientConnection | None, user_id: str, entries: list[AwarenessEntry]
    ) -> None:
        """Fan accepted entries out: one frame to the Yjs clients, one message per entry to the
        JSON clients (a handful: see the per-connection cap), and local ones to the peers."""
        self.broadcast_yjs(
            encode_awareness_message(encode_awareness(entries)),
            exclude=owner if owner is not None and owner.protocol is WireProtocol.YJS else None,
        )
        for entry in entries:
            self.broadcast_json(
                {
                    "type": "presence",
                    "event": "update" if entry.state is not None else "remove",
                    "user_id": user_id,
                    "client_id": entry.client_id,
                    "state": entry.state,
                },
                exclude=owner,
            )
        if owner is not None and self.peers is not None:
            self.peers.publish_awareness(user_id, encode_awareness(entries))

    def renew_awareness(self) -> None:
        """Keep presence alive: renew JSON clients' states, expire silent remote ones.

        Yjs clients drop an awareness state not renewed for 30 s; JSON clients do not renew
        their own, so the server does it for them (called every ~15 s).
        """
        for user_id, expired in self.awareness.expired(time.monotonic()).items():
            self.update_awareness(None, user_id, expired)
        for conn in list(self.connections):
            own = self.awareness.states.get(conn.awareness_client_id)
            if own is not None and own.owner is conn:
                conn.awareness_clock += 1
                renewed = AwarenessEntry(conn.awareness_client_id, conn.awareness_clock, own.state)
                self.update_awareness(conn, conn.user_id, [renewed])

    def local_awareness_by_user(self) -> dict[str, list[AwarenessEntry]]:
        """This node's clients' awareness states, grouped by user (for a peer that syncs)."""
        return self.awareness.local_by_user()

    def presence_list(self) -> list[dict[str, Any]]:
        """Every known awareness state in the JSON protocol's shape."""
        return self.awareness.presence_list()
