"""What this node holds right now, counted: the operator's way to tell a leak from a load.

Everything here is a plain count read on the event loop (no locks, nothing blocking but two
``/proc`` reads), so an operator or a test may poll it while the server is under load.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import asdict, dataclass

from server.hub.registry import Hub

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True, slots=True)
class HubCounts:
    """The counts of one node (see :func:`hub_counts`)."""

    asyncio_tasks: int
    open_sockets: int
    rooms: int
    room_links: int
    rooms_loading: int
    rooms_unloading: int
    unload_timers: int
    connections: int
    queued_messages: int
    sending_connections: int
    awareness_states: int
    op_ids: int
    history_pending_edits: int
    history_pending_bytes: int
    rss_bytes: int | None
    open_fds: int | None

    def as_dict(self) -> dict[str, int | None]:
        """The counts by name."""
        return asdict(self)


def hub_counts(hub: Hub) -> HubCounts:
    """Count the hub's rooms, connections, queues and tasks, and the process's memory."""
    connections = [conn for room in hub.rooms.values() for conn in room.connections]
    loading, unloading, timers = hub.lifecycle_counts()
    return HubCounts(
        asyncio_tasks=len(asyncio.all_tasks()),
        open_sockets=hub.open_sockets,
        rooms=len(hub.rooms),
        room_links=len(hub.links),
        rooms_loading=loading,
        rooms_unloading=unloading,
        unload_timers=timers,
        connections=len(connections),
        queued_messages=sum(conn.queued for conn in connections),
        sending_connections=sum(1 for conn in connections if conn.sending),
        awareness_states=sum(len(room.awareness.states) for room in hub.rooms.values()),
        op_ids=sum(room.ops.counts()[1] for room in hub.rooms.values()),
        history_pending_edits=hub.writer.backlog.edits,
        history_pending_bytes=hub.writer.backlog.bytes,
        rss_bytes=_rss_bytes(),
        open_fds=_open_fds(),
    )


def _rss_bytes() -> int | None:
    """Resident memory from ``/proc/self/statm`` (None where there is no ``/proc``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def _open_fds() -> int | None:
    """Open file descriptors (sockets included), None where there is no ``/proc``."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None
