"""The operator's debug counts (operator key): what a node holds, to tell a leak from a load."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from server.api.deps import Operator, ServicesDep
from server.api.routing import StudioRoute
from server.hub.counts import hub_counts

router = APIRouter(route_class=StudioRoute, tags=["operator"])


class DebugCounts(BaseModel):
    """Counts of this node at the moment of the request."""

    asyncio_tasks: int = Field(description="Tasks on the server's event loop.")
    open_sockets: int = Field(description="Collaboration websockets being served.")
    rooms: int = Field(description="Documents loaded on this node.")
    room_links: int = Field(description="Rooms subscribed to the broker (several nodes).")
    rooms_loading: int
    rooms_unloading: int
    unload_timers: int = Field(description="Empty rooms waiting out their unload grace.")
    connections: int = Field(description="Connections admitted to a room.")
    queued_messages: int = Field(description="Outgoing messages waiting in send queues.")
    sending_connections: int = Field(description="Connections with a sender task running.")
    awareness_states: int
    op_ids: int = Field(description="JSON op ids remembered for idempotent resends.")
    history_pending_edits: int = Field(description="Edits applied but not yet stored.")
    history_pending_bytes: int
    rss_bytes: int | None = Field(description="Resident memory of the process (Linux).")
    open_fds: int | None = Field(description="Open file descriptors of the process (Linux).")


@router.get("/admin/debug/counts", response_model=DebugCounts, summary="Debug counts")
async def counts(_: Operator, services: ServicesDep) -> DebugCounts:
    """Tasks, rooms, connections, queues and memory of the node that answers."""
    return DebugCounts.model_validate(hub_counts(services.hub).as_dict())
