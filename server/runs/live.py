"""Live sessions' current text, read from the hub (the room is loaded if it is not)."""

from __future__ import annotations

from server.hub.registry import Hub


class HubDocuments:
    """:class:`server.runs.inputs.LiveDocuments` over the process's hub."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    async def snapshot(self, session_id: str) -> tuple[str, bytes]:
        """The session's text and Yjs state vector, read in one step of the event loop."""
        room = await self._hub.acquire(session_id)
        try:
            return room.text, room.document.state_vector()
        finally:
            self._hub.release(room)
