"""Keeping one document in step across server nodes through the broker.

Each loaded room has a :class:`RoomLink` on the channel ``session:{id}``. Messages (kinds):

- ``update``: ``varstring user_id, varbytes yjs_update`` — a change made on the sending node;
- ``awareness``: ``varstring user_id, varbytes awareness_payload`` — its clients' presence;
- ``sync-request``: ``varbytes state_vector`` — "send me what I lack" (on open, after a gap,
  after an outage);
- ``sync-reply``: ``varstring requester, varbytes update, varbytes state_vector`` — what the
  requester lacked, plus the replier's state vector so the requester can send back what the
  replier lacks (a two-way exchange);
- ``control``: JSON — a role change, a removed member, a deactivated session;
- ``op-landed``: ``varstring user_id, varstring op_id, varstring digest`` — a JSON op with a
  client op id was applied on the sending node (sent right after its update), so a resend of it
  to this node is not applied again before its history row can be read (see
  :mod:`server.hub.op_ids`);
- ``server-id``: ``varuint client_id`` — the Yjs client id the sending node's replica writes
  under (on open and in answer to a sync-request): this node then refuses clients' updates
  that write there, which the sender would refuse to take from us.

Outgoing messages go through a bounded outbox drained by one task, which coalesces consecutive
updates of one user into one merged update. Pub/sub may lose messages; a lost one is noticed by
the receiver (sequence gap) or the sender (failed publish), and healed by a state-vector
exchange, never by hoping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from crdt import ProtocolError, UpdateError
from crdt.codec import (
    Decoder,
    decode_awareness,
    encode_awareness,
    write_var_bytes,
    write_var_string,
    write_var_uint,
)
from crdt.merge import merge_updates
from server.hub.broker import Broker, BrokerError, Envelope, Subscription
from server.hub.room import Room

logger = logging.getLogger(__name__)

UPDATE = "update"
AWARENESS = "awareness"
SYNC_REQUEST = "sync-request"
SYNC_REPLY = "sync-reply"
CONTROL = "control"
OP_LANDED = "op-landed"
SERVER_ID = "server-id"

# Outgoing messages a room may queue while the broker is slow; past this they are dropped and
# the peers are resynced instead.
OUTBOX_LIMIT = 10_000
# The most messages one send to the broker carries.
SEND_BATCH = 256
# Messages that arrive between subscribing and the document being loaded.
EARLY_LIMIT = 10_000
# While a sent message may have been lost, ask the peers to resync this often.
RESYNC_RETRY_SECONDS = 1.0
# What an empty Yjs update looks like (no structs, empty delete set).
EMPTY_UPDATE = b"\x00\x00"

ControlHandler = Callable[[str, dict[str, Any]], None]


def session_channel(session_id: str) -> str:
    """The broker channel of one collaboration session."""
    return f"session:{session_id}"


def encode_control(action: str, **fields: Any) -> bytes:
    """A control message's payload."""
    return json.dumps({"action": action, **fields}).encode("utf-8")


class RoomLink:
    """One room's connection to the other nodes serving the same document."""

    def __init__(self, session_id: str, broker: Broker, on_control: ControlHandler) -> None:
        self.session_id = session_id
        self.channel = session_channel(session_id)
        self._broker = broker
        self._on_control = on_control
        self.room: Room | None = None
        self._early: deque[Envelope] = deque()
        self._outbox: deque[tuple[str, str, bytes]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        # Something we sent may not have arrived: keep asking peers to resync until one
        # sync-request gets out.
        self._maybe_lost = False
        self.resyncs = 0
        # Sequence gaps seen on the channel (each healed by a resync; see /metrics).
        self.gaps = 0

    # -- life cycle ----------------------------------------------------------------------------

    async def subscribe(self) -> None:
        """Start listening (before the document is loaded, so nothing is missed)."""
        self._subscription = await self._broker.subscribe(self.channel, self._on_envelope)

    def attach(self, room: Room) -> None:
        """The document is loaded: apply what arrived meanwhile, then sync with the peers."""
        self.room = room
        room.peers = self
        self._task = asyncio.create_task(self._run(), name=f"room-link-{self.session_id}")
        early, self._early = self._early, deque()
        for envelope in early:
            self._handle(envelope)
        self.request_sync()
        self.announce_server_id()

    async def close(self) -> None:
        """Stop listening and sending (what is still queued is covered by the stored state)."""
        if self._subscription is not None:
            with contextlib.suppress(BrokerError):
                await self._subscription.unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.room is not None:
            self.room.peers = None

    # -- outgoing (the Peers protocol of Room) ------------------------------------------------

    def publish_update(self, user_id: str | None, update: bytes) -> None:
        """Queue an update made on this node."""
        self._enqueue(UPDATE, user_id or "", update)

    def publish_awareness(self, user_id: str, payload: bytes) -> None:
        """Queue awareness entries of a local client."""
        self._enqueue(AWARENESS, user_id, payload)

    def publish_op_landed(self, user_id: str, op_id: str, digest: str) -> None:
        """Queue the news that a local client's op with this id was applied."""
        self._enqueue(OP_LANDED, user_id, write_var_string(op_id) + write_var_string(digest))

    def request_sync(self) -> None:
        """Ask every peer for what this node lacks (and offer what they lack in return)."""
        if self.room is None:
            return
        self.resyncs += 1
        self._enqueue(SYNC_REQUEST, "", self.room.document.state_vector())

    def announce_server_id(self) -> None:
        """Tell the peers the client id this node's replica writes under (see
        :meth:`crdt.document.PromptDocument.note_peer_server_id`)."""
        if self.room is not None:
            self._enqueue(SERVER_ID, "", write_var_uint(self.room.document.client_id))

    def _enqueue(self, kind: str, user_id: str, payload: bytes) -> None:
        if len(self._outbox) >= OUTBOX_LIMIT:
            logger.warning("outbox of %s overflowed; resyncing peers instead", self.session_id)
            self._outbox.clear()
            self._maybe_lost = True
        self._outbox.append((kind, user_id, payload))
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            if not self._outbox:
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), RESYNC_RETRY_SECONDS)
                except TimeoutError:
                    if self._maybe_lost and self._broker.healthy:
                        self.request_sync()
                continue
            # Everything queued goes out in one send: a busy document never waits a round
            # trip per message (that made its queue, and its latency, grow without bound).
            messages, syncs = self._take_outbox()
            try:
                await self._broker.publish_many(self.channel, messages)
            except BrokerError as exc:
                logger.warning("publish to %s failed (%s); will resync", self.channel, exc)
                self._outbox.clear()
                self._maybe_lost = True
                continue
            if syncs:
                self._maybe_lost = False

    def _take_outbox(self) -> tuple[list[tuple[str, bytes]], bool]:
        """Up to :data:`SEND_BATCH` framed messages from the outbox, in order (consecutive
        updates of one user merged), and whether a sync-request is among them."""
        messages: list[tuple[str, bytes]] = []
        syncs = False
        while self._outbox and len(messages) < SEND_BATCH:
            kind, user_id, payload = self._outbox.popleft()
            if kind == UPDATE:
                payload = self._coalesce(user_id, payload)
            syncs = syncs or kind == SYNC_REQUEST
            messages.append((kind, self._frame(kind, user_id, payload)))
        return messages, syncs

    def _coalesce(self, user_id: str, first: bytes) -> bytes:
        """Merge the queued updates of the same user that follow ``first`` into one."""
        updates = [first]
        while self._outbox and self._outbox[0][0] == UPDATE and self._outbox[0][1] == user_id:
            updates.append(self._outbox.popleft()[2])
        if len(updates) == 1:
            return first
        try:
            return merge_updates(updates)
        except UpdateError:
            logger.exception("could not merge updates for %s; resyncing", self.session_id)
            self._maybe_lost = True
            return first

    @staticmethod
    def _frame(kind: str, user_id: str, payload: bytes) -> bytes:
        if kind in (UPDATE, AWARENESS):
            return write_var_string(user_id) + write_var_bytes(payload)
        if kind == OP_LANDED:
            return write_var_string(user_id) + payload
        if kind == SYNC_REQUEST:
            return write_var_bytes(payload)
        return payload  # sync-reply and control are framed by their makers

    # -- incoming ------------------------------------------------------------------------------

    def _on_envelope(self, envelope: Envelope) -> None:
        if self.room is None:
            if len(self._early) >= EARLY_LIMIT:
                self._early.clear()  # the sync on attach covers what was dropped
            self._early.append(envelope)
            return
        self._handle(envelope)

    def _handle(self, envelope: Envelope) -> None:
        room = self.room
        assert room is not None
        try:
            self._dispatch(room, envelope)
        except (ProtocolError, UpdateError, ValueError) as exc:
            logger.warning(
                "bad %s message from node %s on %s: %s",
                envelope.kind,
                envelope.sender,
                self.channel,
                exc,
            )
        if envelope.gap:
            self.gaps += 1
            logger.info(
                "missed messages from node %s on %s; resyncing", envelope.sender, self.channel
            )
            self.request_sync()

    def _dispatch(self, room: Room, envelope: Envelope) -> None:
        kind = envelope.kind
        if kind == CONTROL:
            message = json.loads(envelope.payload)
            if not isinstance(message, dict) or not isinstance(message.get("action"), str):
                raise ValueError("control message without an action")
            self._on_control(self.session_id, message)
            return
        decoder = Decoder(envelope.payload)
        if kind == UPDATE:
            user_id = decoder.read_var_string("user id")
            update = decoder.read_var_bytes("update")
            decoder.expect_end(kind)
            room.apply_remote_update(update, user_id=user_id or None)
        elif kind == AWARENESS:
            user_id = decoder.read_var_string("user id")
            entries = decode_awareness(decoder.read_var_bytes("awareness"))
            decoder.expect_end(kind)
            room.update_awareness(None, user_id, entries)
        elif kind == OP_LANDED:
            user_id = decoder.read_var_string("user id")
            op_id = decoder.read_var_string("op id")
            digest = decoder.read_var_string("digest")
            decoder.expect_end(kind)
            room.ops.record_remote(user_id, op_id, digest)
        elif kind == SYNC_REQUEST:
            state_vector = decoder.read_var_bytes("state vector")
            decoder.expect_end(kind)
            self._reply_to_sync(room, envelope.sender, state_vector)
            self.announce_server_id()  # a node that (re)joins has not heard it yet
        elif kind == SERVER_ID:
            client_id = decoder.read_var_uint("client id")
            decoder.expect_end(kind)
            room.document.note_peer_server_id(client_id)
        elif kind == SYNC_REPLY:
            requester = decoder.read_var_string("requester")
            update = decoder.read_var_bytes("update")
            their_vector = decoder.read_var_bytes("state vector")
            decoder.expect_end(kind)
            room.apply_remote_update(update, user_id=None)
            if requester == self._broker.node_id:
                missing = room.document.encode_state_as_update(their_vector)
                if missing != EMPTY_UPDATE:
                    self.publish_update(None, missing)
        else:
            raise ValueError(f"unknown message kind {kind!r}")

    def _reply_to_sync(self, room: Room, requester: str, state_vector: bytes) -> None:
        missing = room.document.encode_state_as_update(state_vector)
        reply = (
            write_var_string(requester)
            + write_var_bytes(missing)
            + write_var_bytes(room.document.state_vector())
        )
        self._enqueue(SYNC_REPLY, "", reply)
        # A node that (re)joins also needs to know who is here.
        for user_id, entries in room.local_awareness_by_user().items():
            self.publish_awareness(user_id, encode_awareness(entries))
