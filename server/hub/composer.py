"""The "Composer" presence participant: a compose job shown inside the live session it came from.

The hub hook is the smallest one the room already has: a server-side awareness state
(``Room.update_awareness`` with no owning connection, as for another node's client), published
to the other nodes through the room's peers like a local client's. Every client — Yjs or JSON, on
any node — sees one more participant named "Composer" whose state carries the job's stage and
progress, and, once the judge has finished, its result as a ``suggestion`` they may apply.

One follower task per job holds the room while the job runs, re-announces the state when the job
changes and every renewal period (remote nodes and Yjs clients drop states not renewed within
30 s), and after the job finished keeps the final state for ``linger_seconds`` before removing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from crdt.codec import AwarenessEntry, encode_awareness
from server.compose.events import ComposeEvent
from server.hub.registry import AWARENESS_RENEW_SECONDS, Hub, SessionNotFoundError
from server.hub.room import Room

logger = logging.getLogger(__name__)

COMPOSER_NAME = "Composer"
COMPOSER_COLOR = "#8B5CF6"
# Awareness client ids of composer participants: this base plus the job id (mod 2**24). Yjs
# picks its ids at random from 0 … 2**32-1, so a clash with a live client is negligible.
COMPOSER_ID_BASE = 0xC0000000


def composer_client_id(run_id: int) -> int:
    """The awareness client id of a job's participant (the same on every node)."""
    return COMPOSER_ID_BASE + run_id % (1 << 24)


def composer_state(event: ComposeEvent) -> dict[str, Any]:
    """The participant's awareness state for one state of its job."""
    job = event.to_json()
    suggestion = job.pop("result", None)
    state: dict[str, Any] = {
        "user": {"name": COMPOSER_NAME, "color": COMPOSER_COLOR},
        "name": COMPOSER_NAME,
        "color": COMPOSER_COLOR,
        "composer": job,
    }
    if suggestion is not None:
        state["composer"]["suggestion"] = suggestion
    return state


def _clock() -> int:
    # Milliseconds since the epoch: increases across nodes, so a job resumed elsewhere
    # replaces its participant instead of being ignored as stale.
    return int(time.time() * 1000)


class _Follower:
    def __init__(self, event: ComposeEvent) -> None:
        self.latest = event
        self.changed = asyncio.Event()
        self.changed.set()


class ComposerPresence:
    """Shows compose jobs started from a live session in that session (a ComposeObserver)."""

    def __init__(
        self,
        hub: Hub,
        *,
        linger_seconds: float,
        renew_seconds: float = AWARENESS_RENEW_SECONDS,
    ) -> None:
        self._hub = hub
        self._linger = linger_seconds
        self._renew = renew_seconds
        self._followers: dict[int, _Follower] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def __aenter__(self) -> ComposerPresence:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def changed(self, event: ComposeEvent) -> None:
        """A job changed: update its participant (starting one for a new job)."""
        if event.session_id is None or self._closed:
            return
        follower = self._followers.get(event.run_id)
        if follower is not None:
            follower.latest = event
            follower.changed.set()
            return
        follower = self._followers[event.run_id] = _Follower(event)
        task = asyncio.create_task(
            self._follow(event.run_id, event.session_id, follower), name=f"composer-{event.run_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, run_id: int, session_id: str, follower: _Follower) -> None:
        try:
            room = await self._hub.acquire(session_id)
        except SessionNotFoundError:
            self._followers.pop(run_id, None)
            return
        client_id = composer_client_id(run_id)
        user_id = f"composer:{run_id}"
        try:
            linger_until: float | None = None
            while True:
                follower.changed.clear()
                event = follower.latest
                self._announce(room, user_id, client_id, composer_state(event))
                if event.finished and linger_until is None:
                    linger_until = time.monotonic() + self._linger
                timeout = self._renew
                if linger_until is not None:
                    timeout = min(timeout, linger_until - time.monotonic())
                    if timeout <= 0:
                        break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(follower.changed.wait(), timeout)
        finally:
            self._followers.pop(run_id, None)
            self._announce(room, user_id, client_id, None)
            self._hub.release(room)

    @staticmethod
    def _announce(room: Room, user_id: str, client_id: int, state: dict[str, Any] | None) -> None:
        entries = [AwarenessEntry(client_id, _clock(), state)]
        accepted = room.update_awareness(None, user_id, entries)
        if accepted and room.peers is not None:
            room.peers.publish_awareness(user_id, encode_awareness(accepted))
