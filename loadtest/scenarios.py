"""Named scenarios: presets for a run, each field overridable from the command line."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from loadtest.model import Protocol

Kind = Literal["edit", "idle"]


@dataclass(frozen=True, slots=True)
class Scenario:
    """The shape of a load: how many rooms and clients, how fast they edit, for how long."""

    name: str
    rooms: int
    clients_per_room: int
    edit_rate: float
    """Edits per second per client."""
    duration: float
    """Seconds of editing (or of holding idle connections)."""
    protocol: Protocol = "yjs"
    kind: Kind = "edit"
    join_window: float = 0.0
    """Spread the joins over this many seconds (0: as fast as ``connect_concurrency`` allows)."""
    connect_concurrency: int = 200
    description: str = ""

    @property
    def clients(self) -> int:
        """Clients over all rooms."""
        return self.rooms * self.clients_per_room

    def with_overrides(self, **changes: object) -> Scenario:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "many-rooms",
            rooms=20,
            clients_per_room=10,
            edit_rate=10,
            duration=15,
            description="20 sessions x 10 clients x 10 edits/s: broad, moderate fan-out",
        ),
        Scenario(
            "hot-room",
            rooms=1,
            clients_per_room=100,
            edit_rate=2,
            duration=15,
            description="1 session x 100 clients x 2 edits/s: one wide fan-out",
        ),
        Scenario(
            "join-storm",
            rooms=50,
            clients_per_room=20,
            edit_rate=0.5,
            duration=8,
            join_window=3.0,
            connect_concurrency=1000,
            description="1,000 clients join 50 sessions within 3 s, then edit lightly",
        ),
        Scenario(
            "idle",
            rooms=100,
            clients_per_room=100,
            edit_rate=0,
            duration=10,
            kind="idle",
            connect_concurrency=200,
            description="10,000 idle connections: server RSS per connection",
        ),
        Scenario(
            "sustained",
            rooms=20,
            clients_per_room=10,
            edit_rate=10,
            duration=60,
            description="many-rooms held for 60 s: documents keep growing, so commits, folds "
            "and the per-edit cost must not grow with them; watch p99 and RSS growth",
        ),
        Scenario(
            "smoke",
            rooms=2,
            clients_per_room=3,
            edit_rate=5,
            duration=3,
            description="a few seconds, for CI: proves the tool works",
        ),
    )
}

COMPOUND = {"json-vs-yjs": "many-rooms", "nodes-vs-one": "many-rooms"}
"""Scenarios that are several runs: ``json-vs-yjs`` runs its base with both protocols;
``nodes-vs-one`` runs it on our server with one node, then two nodes + Redis (both on a fresh
PostgreSQL database)."""

ALL_NAMES = (*SCENARIOS, *COMPOUND)


def get(name: str) -> Scenario:
    """The preset called ``name`` (a compound scenario gives its base)."""
    if name in COMPOUND:
        return replace(SCENARIOS[COMPOUND[name]], name=name)
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(ALL_NAMES)}") from None
