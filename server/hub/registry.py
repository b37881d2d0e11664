"""The hub: which rooms this node has loaded, loading and unloading them, and control actions.

Loading is single-flight: concurrent joiners of a document that is not loaded yet all await
the same load, so none of them is lost. A room with no connections is flushed and unloaded
after a grace period; a join during the grace period keeps it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crdt import Change, OpOrigin, PromptDocument
from crdt.diff import diff_to_op
from server.hub.closing import CloseCode
from server.hub.connection import WireProtocol
from server.hub.presence import PresenceTracker
from server.hub.room import Room
from storage.history_writer import HistoryWriter
from storage.repositories.collaboration import get_session_by_id

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
        *,
        unload_grace_seconds: float,
    ) -> None:
        self._sessions = sessions
        self.writer = writer
        self.presence = presence
        self._grace = unload_grace_seconds
        self.rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Future[Room]] = {}
        self._users: dict[str, int] = {}
        self._unload_timers: dict[str, asyncio.TimerHandle] = {}
        self._unloading: dict[str, asyncio.Task[None]] = {}
        self._closed = False

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
            self.writer.mark_dirty(session_id, room.snapshot)
            await self.writer.flush()
            del self.rooms[session_id]
            logger.info("unloaded document %s (rev %d)", session_id, room.rev)
        except Exception:
            logger.exception("unloading document %s failed; keeping it in memory", session_id)
        finally:
            self._unloading.pop(session_id, None)

    async def _load(self, session_id: str) -> Room:
        async with self._sessions() as db:
            row = await get_session_by_id(db, session_id)
        if row is None:
            raise SessionNotFoundError(session_id)
        if row.crdt_state:
            document = PromptDocument.from_state(row.crdt_state)
            needs_snapshot = False
        else:
            # Never had CRDT state: build it once from the text and persist it right away, so
            # every later load (and every Yjs client) sees the same CRDT items.
            document = PromptDocument.from_text(row.content or "")
            needs_snapshot = True
        logger.info("loaded document %s (%d chars)", session_id, len(document.text))
        room = Room(
            session_id=row.id,
            tenant_id=row.tenant_id,
            name=row.name,
            description=row.description,
            document=document,
            writer=self.writer,
            needs_snapshot=needs_snapshot,
        )
        room.active = bool(row.is_active)
        return room

    async def close(self) -> None:
        """Shutdown: close every connection (1012), persist every document, stop timers."""
        self._closed = True
        for timer in self._unload_timers.values():
            timer.cancel()
        self._unload_timers.clear()
        for room in self.rooms.values():
            for conn in list(room.connections):
                conn.close(CloseCode.SERVER_RESTART, "server restarting")
            self.writer.mark_dirty(room.session_id, room.snapshot)
        if self._unloading:
            await asyncio.gather(*self._unloading.values(), return_exceptions=True)

    # -- server-side edits ---------------------------------------------------------------------

    async def edit(
        self, session_id: str, user_id: str, make_change: Callable[[Room], Change | None]
    ) -> tuple[Room, int, Awaitable[list[int]]]:
        """Apply a change made by the server (e.g. a restore) through the same path as a client."""
        room = await self.acquire(session_id)
        try:
            change = make_change(room)
            if change is None:
                return room, room.rev, room.commit_nothing()
            rev, durable = room.commit(change, user_id=user_id, author=None)
            return room, rev, durable
        finally:
            self.release(room)

    async def replace_text(
        self, session_id: str, user_id: str, target: str, *, origin: OpOrigin
    ) -> tuple[int, Awaitable[list[int]]]:
        """Make the document's text equal ``target`` with one minimal replace, as a new change."""

        def make(room: Room) -> Change | None:
            op = diff_to_op(room.text, target, origin=origin)
            return None if op is None else room.document.apply_op(op)

        _room, rev, durable = await self.edit(session_id, user_id, make)
        return rev, durable

    # -- control actions -----------------------------------------------------------------------

    def set_role(self, session_id: str, user_id: str, role: str) -> None:
        """Apply a role change to the user's open connections at once."""
        room = self.rooms.get(session_id)
        if room is None:
            return
        for conn in room.connections_of(user_id):
            conn.role = role
            if conn.protocol is WireProtocol.JSON:
                conn.send_json({"type": "role", "role": role})

    def remove_member(self, session_id: str, user_id: str) -> None:
        """Close the user's open connections to the session (they are no longer a member)."""
        room = self.rooms.get(session_id)
        if room is None:
            return
        for conn in room.connections_of(user_id):
            conn.close(CloseCode.FORBIDDEN, "removed from the session")

    def deactivate(self, session_id: str) -> None:
        """Close every connection of the session and refuse joins from now on."""
        room = self.rooms.get(session_id)
        if room is None:
            return
        room.active = False
        for conn in list(room.connections):
            conn.close(CloseCode.SESSION_INACTIVE, "the session was deactivated")

    def rename(self, session_id: str, name: str, description: str | None) -> None:
        """Keep a loaded room's name and description in step with the database."""
        room = self.rooms.get(session_id)
        if room is not None:
            room.name = name
            room.description = description
