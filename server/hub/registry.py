"""The hub: which rooms this node has loaded, loading and unloading them, and control actions.

Loading is single-flight: concurrent joiners of a document that is not loaded yet all await
the same load, so none of them is lost. Opening a document subscribes to its broker channel
first, then loads it from storage, then exchanges state vectors with the other nodes holding it.
A room with no connections is flushed and unloaded after a grace period; a join during the
grace period keeps it. Control actions (role change, member removed, session deactivated) take
effect on this node and are published to the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crdt import OpOrigin, PromptDocument
from crdt.diff import diff_to_op
from crdt.document import DEFAULT_MAX_WAITING_UPDATES
from crdt.merge import document_from_log
from server.hub.announcements import announce
from server.hub.awareness import DEFAULT_LIMITS, AwarenessLimits
from server.hub.broker import Broker, BrokerError
from server.hub.closing import CloseCode
from server.hub.cluster import CONTROL, RoomLink, encode_control, session_channel
from server.hub.connection import WireProtocol
from server.hub.doc_size import check_op
from server.hub.presence import PresenceTracker
from server.hub.room import Room
from server.hub.traffic import Traffic
from storage.history_writer import HistoryWriter
from storage.repositories.collaboration import get_member, get_session_by_id, load_document
from storage.repositories.history import recent_client_ops

# How often JSON clients' awareness is renewed and silent remote states expire.
AWARENESS_RENEW_SECONDS = 15.0

logger = logging.getLogger(__name__)


class SessionNotFoundError(LookupError):
    """The collaboration session does not exist (any more)."""


class Hub:
    """All rooms of this node."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writer: HistoryWriter,
        presence: PresenceTracker,
        broker: Broker,
        *,
        unload_grace_seconds: float,
        awareness_limits: AwarenessLimits = DEFAULT_LIMITS,
        op_ids_per_user: int = 100,
        op_id_max_chars: int = 64,
        max_document_bytes: int | None = None,
        crdt_max_waiting_updates: int = DEFAULT_MAX_WAITING_UPDATES,
    ) -> None:
        self._sessions = sessions
        self._max_document_bytes = max_document_bytes
        self._awareness_limits = awareness_limits
        self._op_ids_per_user = op_ids_per_user
        self._op_id_max_chars = op_id_max_chars
        self._max_waiting_updates = crdt_max_waiting_updates
        self.writer = writer
        self.presence = presence
        self.broker = broker
        self._grace = unload_grace_seconds
        self.rooms: dict[str, Room] = {}
        self.links: dict[str, RoomLink] = {}
        # Message counts of every room and connection of this hub (read by /metrics).
        self.traffic = Traffic()
        # Gaps and resyncs of the links closed so far (the open ones keep their own counts).
        self._retired_gaps = 0
        self._retired_resyncs = 0
        self._maintenance: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._loading: dict[str, asyncio.Future[Room]] = {}
        self._users: dict[str, int] = {}
        self._unload_timers: dict[str, asyncio.TimerHandle] = {}
        self._unloading: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        # Collaboration sockets being served (admission included), for the operator's counts.
        self.open_sockets = 0
        broker.add_reconnect_listener(self._on_broker_reconnected)
        presence.source = self._connected_members

    async def __aenter__(self) -> Hub:
        self._maintenance = asyncio.create_task(self._maintain(), name="hub-maintenance")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- lifecycle of rooms --------------------------------------------------------------------

    async def acquire(self, session_id: str) -> Room:
        """The loaded room for a session, loading it once however many callers race."""
        while True:
            pending_unload = self._unloading.get(session_id)
            if pending_unload is not None:
                await asyncio.shield(pending_unload)
                continue
            room = self.rooms.get(session_id)
            if room is not None:
                self._hold(session_id)
                return room
            loading = self._loading.get(session_id)
            if loading is None:
                loading = asyncio.get_running_loop().create_future()
                self._loading[session_id] = loading
                try:
                    room = await self._load(session_id)
                except BaseException as exc:
                    loading.set_exception(exc)
                    loading.exception()  # mark retrieved: the caller re-raises it below
                    del self._loading[session_id]
                    raise
                self.rooms[session_id] = room
                del self._loading[session_id]
                loading.set_result(room)
            room = await asyncio.shield(loading)
            if self.rooms.get(session_id) is room:
                self._hold(session_id)
                return room

    def release(self, room: Room) -> None:
        """A holder is done with the room; unload it after the grace period if nobody is left."""
        count = self._users.get(room.session_id, 0) - 1
        if count > 0:
            self._users[room.session_id] = count
            return
        self._users.pop(room.session_id, None)
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        self._unload_timers[room.session_id] = loop.call_later(
            self._grace, self._start_unload, room.session_id
        )

    def _hold(self, session_id: str) -> None:
        self._users[session_id] = self._users.get(session_id, 0) + 1
        timer = self._unload_timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()

    def _start_unload(self, session_id: str) -> None:
        self._unload_timers.pop(session_id, None)
        if self._users.get(session_id) or session_id in self._unloading:
            return
        task = asyncio.create_task(self._unload(session_id), name=f"unload-{session_id}")
        self._unloading[session_id] = task

    async def _unload(self, session_id: str) -> None:
        try:
            room = self.rooms.get(session_id)
            if room is None:
                return
            self.writer.request_compaction(session_id)
            await self.writer.flush()
            if self._users.get(session_id):
                return  # someone joined while we were flushing: keep it
            del self.rooms[session_id]
            link = self.links.pop(session_id, None)
            if link is not None:
                self._retire(link)
                await link.close()
            logger.info("unloaded document %s (rev %d)", session_id, room.rev)
        except Exception:
            logger.exception("unloading document %s failed; keeping it in memory", session_id)
        finally:
            self._unloading.pop(session_id, None)

    async def _load(self, session_id: str) -> Room:
        if self.broker.single_node:
            return await self._read(session_id)  # nobody to keep in step with
        # Subscribe before reading storage, so no change made meanwhile on another node is lost.
        link = RoomLink(session_id, self.broker, self._apply_control)
        await link.subscribe()
        try:
            room = await self._read(session_id)
        except BaseException:
            await link.close()
            raise
        self.links[session_id] = link
        link.attach(room)
        return room

    async def _read(self, session_id: str) -> Room:
        async with self._sessions() as db:
            row = await get_session_by_id(db, session_id)
            persisted = await load_document(db, session_id)
        if row is None or persisted is None:
            raise SessionNotFoundError(session_id)
        state, updates, content = persisted
        if state or updates:
            document = document_from_log(state, updates)
        else:
            # Never had CRDT state: build it once from the text and persist it right away, so
            # every later load (and every Yjs client) sees the same CRDT items.
            document = PromptDocument.from_text(content)
            self.writer.log_update(session_id, document.full_state())
        document.max_waiting_updates = self._max_waiting_updates
        logger.info(
            "loaded document %s (%d chars, %d logged updates)",
            session_id,
            len(document.text),
            len(updates),
        )
        room = Room(
            session_id=row.id,
            tenant_id=row.tenant_id,
            name=row.name,
            description=row.description,
            document=document,
            writer=self.writer,
            node_id=self.broker.node_id,
            log_remote_updates=not self.broker.single_node,
            awareness_limits=self._awareness_limits,
            op_ids_per_user=self._op_ids_per_user,
            op_id_max_chars=self._op_id_max_chars,
            traffic=self.traffic,
            max_document_bytes=self._max_document_bytes,
        )
        room.active = bool(row.is_active)
        return room

    def lifecycle_counts(self) -> tuple[int, int, int]:
        """Rooms being loaded, being unloaded, and waiting out their unload grace."""
        return len(self._loading), len(self._unloading), len(self._unload_timers)

    async def refresh_op_ids(self, room: Room, user_id: str) -> None:
        """Read a joining user's last stored op ids into the room (see :mod:`server.hub.op_ids`):
        at every join, since another node may have stored some since the room loaded."""
        async with self._sessions() as db:
            stored = await recent_client_ops(db, room.session_id, user_id, limit=room.ops.per_user)
        room.ops.merge_stored(user_id, stored)

    @property
    def cluster_gaps(self) -> int:
        """Sequence gaps seen on document channels since start (each healed by a resync)."""
        return self._retired_gaps + sum(link.gaps for link in self.links.values())

    @property
    def cluster_resyncs(self) -> int:
        """Resyncs requested from the other nodes since start."""
        return self._retired_resyncs + sum(link.resyncs for link in self.links.values())

    def _retire(self, link: RoomLink) -> None:
        """Keep a closing link's counts (the metrics are counters: they never go down)."""
        self._retired_gaps += link.gaps
        self._retired_resyncs += link.resyncs

    async def close(self) -> None:
        """Shutdown: close every connection (1012), persist every document, stop timers."""
        if self._closed:
            return
        self._closed = True
        self.broker.remove_reconnect_listener(self._on_broker_reconnected)
        tasks = [t for t in (self._maintenance, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for timer in self._unload_timers.values():
            timer.cancel()
        self._unload_timers.clear()
        for room in self.rooms.values():
            for conn in list(room.connections):
                conn.close(CloseCode.SERVER_RESTART, "server restarting")
            self.writer.request_compaction(room.session_id)
        if self._unloading:
            await asyncio.gather(*self._unloading.values(), return_exceptions=True)
        for link in list(self.links.values()):
            self._retire(link)
            await link.close()
        self.links.clear()

    # -- server-side edits ---------------------------------------------------------------------

    async def replace_text(
        self, session_id: str, user_id: str, target: str, *, origin: OpOrigin
    ) -> tuple[int, Awaitable[list[int]]]:
        """Make the document's text equal ``target`` with one minimal replace, as a new change.

        A server-side edit (e.g. a restore) goes through the same path as a client's: it is
        numbered, fanned out, recorded and sent to the other nodes. Raises
        :class:`~server.hub.doc_size.DocumentTooLarge` (nothing applied) past the size bound.
        """
        room = await self.acquire(session_id)
        try:
            op = diff_to_op(room.text, target, origin=origin)
            if op is None:
                return room.rev, room.commit_nothing()
            check_op(room.document, op, room.max_document_bytes)
            return room.commit(room.document.apply_op(op), user_id=user_id, author=None)
        finally:
            self.release(room)

    # -- control actions -----------------------------------------------------------------------

    async def set_role(self, session_id: str, user_id: str, role: str) -> None:
        """Apply a role change to the user's open connections, here and on every other node."""
        self._apply_control(session_id, {"action": "role", "user_id": user_id, "role": role})
        await self._publish_control(session_id, encode_control("role", user_id=user_id, role=role))

    async def remove_member(self, session_id: str, user_id: str) -> None:
        """Close the user's open connections to the session, on every node."""
        self._apply_control(session_id, {"action": "remove", "user_id": user_id})
        await self._publish_control(session_id, encode_control("remove", user_id=user_id))

    async def deactivate(self, session_id: str) -> None:
        """Close every connection of the session and refuse joins, on every node."""
        self._apply_control(session_id, {"action": "deactivate"})
        await self._publish_control(session_id, encode_control("deactivate"))

    async def announce(self, session_id: str, kind: str, event: dict[str, object]) -> None:
        """Show an event (e.g. ``published``) to every client of the session, on every node."""
        self._apply_control(session_id, {"action": "announce", "kind": kind, "event": event})
        await self._publish_control(session_id, encode_control("announce", kind=kind, event=event))

    def rename(self, session_id: str, name: str, description: str | None) -> None:
        """Keep a loaded room's name and description in step with the database."""
        room = self.rooms.get(session_id)
        if room is not None:
            room.name = name
            room.description = description

    async def _publish_control(self, session_id: str, payload: bytes) -> None:
        if self.broker.single_node:
            return
        try:
            await self.broker.publish(session_channel(session_id), CONTROL, payload)
        except BrokerError as exc:
            # The database already holds the change; other nodes re-check their open
            # connections against it when the broker comes back.
            logger.warning("could not publish a control event for %s: %s", session_id, exc)

    def _apply_control(self, session_id: str, message: dict[str, object]) -> None:
        room = self.rooms.get(session_id)
        if room is None:
            return
        action = message.get("action")
        user_id = message.get("user_id")
        if action == "role" and isinstance(user_id, str) and isinstance(message.get("role"), str):
            role = str(message["role"])
            if user_id in room.roster:
                room.roster[user_id]["role"] = role
            else:
                room.invalidate_roster()  # a new member: their name and color are not here
            for conn in room.connections_of(user_id):
                conn.role = role
                if conn.protocol is WireProtocol.JSON:
                    conn.send_json({"type": "role", "role": role})
        elif action == "remove" and isinstance(user_id, str):
            room.roster.pop(user_id, None)
            for conn in room.connections_of(user_id):
                conn.close(CloseCode.FORBIDDEN, "removed from the session")
        elif action == "announce" and isinstance(message.get("event"), dict):
            announce(room, str(message.get("kind")), dict(message["event"]))  # type: ignore[call-overload]
        elif action == "deactivate":
            room.active = False
            for conn in list(room.connections):
                conn.close(CloseCode.SESSION_INACTIVE, "the session was deactivated")
        else:
            logger.warning("ignoring unknown control event %r for %s", message, session_id)

    # -- keeping nodes in step -----------------------------------------------------------------

    def _on_broker_reconnected(self) -> None:
        """After a broker outage: resync every document and re-check open connections."""
        logger.info("broker reconnected; resyncing %d document(s)", len(self.links))
        for link in self.links.values():
            link.request_sync()
        task = asyncio.create_task(self._revalidate_connections(), name="revalidate")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _revalidate_connections(self) -> None:
        """Apply control events that may have been missed: roles, removals, deactivation."""
        for session_id, room in list(self.rooms.items()):
            room.invalidate_roster()  # membership may have changed while events were missed
            async with self._sessions() as db:
                row = await get_session_by_id(db, session_id)
                if row is None or not row.is_active:
                    self._apply_control(session_id, {"action": "deactivate"})
                    continue
                for user_id in {c.user_id for c in room.connections}:
                    member = await get_member(db, session_id, user_id)
                    if member is None:
                        self._apply_control(session_id, {"action": "remove", "user_id": user_id})
                    elif any(c.role != member.role for c in room.connections_of(user_id)):
                        self._apply_control(
                            session_id,
                            {"action": "role", "user_id": user_id, "role": member.role},
                        )

    def _connected_members(self) -> Iterable[tuple[str, str]]:
        """(session_id, user_id) of every open connection on this node."""
        for room in list(self.rooms.values()):
            for user_id in {conn.user_id for conn in room.connections}:
                yield room.session_id, user_id

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(AWARENESS_RENEW_SECONDS)
            for room in list(self.rooms.values()):
                room.renew_awareness()
