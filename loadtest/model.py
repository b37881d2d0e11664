"""Plain data passed between the runner, the client workers and the statistics.

Everything here is picklable (worker processes send it back through a pipe). Times are
``time.monotonic()`` seconds: on Linux that is ``CLOCK_MONOTONIC``, one clock for every process
on the machine, so a send time taken in one process and an arrival time taken in another can be
subtracted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Protocol = Literal["yjs", "json"]
PROTOCOLS: tuple[Protocol, ...] = ("yjs", "json")

# How many error messages a worker keeps verbatim (the rest are only counted).
MAX_ERROR_SAMPLES = 20


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One simulated client: a global id, the room it joins and the URL it connects to."""

    client_id: int
    room: int
    url: str
    protocol: Protocol


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """What one worker (an event loop, possibly in its own process) runs."""

    clients: tuple[ClientSpec, ...]
    edit_rate: float
    """Edits per second per client (0: the clients stay idle)."""
    duration: float
    """Length of the edit (or idle) phase in seconds."""
    connect_concurrency: int
    """At most this many connection attempts in flight at once (per worker)."""
    join_window: float
    """Spread the connection attempts evenly over this many seconds (0: as fast as allowed)."""
    connect_timeout: float
    drain_timeout: float
    """How long to wait after the edit phase for deliveries still in flight."""
    seed: int
    yjs_observer: str = "update"
    """How Yjs clients spot arrived markers: ``update`` or ``delta`` (see ``yjs_client``)."""


@dataclass(slots=True)
class ErrorLog:
    """Counted errors by kind, with the first few messages kept verbatim."""

    counts: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def add(self, kind: str, detail: str = "") -> None:
        """Count one error of ``kind``."""
        self.counts[kind] += 1
        if len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append(f"{kind}: {detail}" if detail else kind)

    def merge(self, other: ErrorLog) -> None:
        """Add another log's counts and samples to this one."""
        self.counts.update(other.counts)
        room = MAX_ERROR_SAMPLES - len(self.samples)
        if room > 0:
            self.samples.extend(other.samples[:room])

    @property
    def total(self) -> int:
        """Number of errors of every kind."""
        return sum(self.counts.values())


@dataclass(slots=True)
class ConnectRecord:
    """One client's connection attempt; durations in seconds, None where it never got there."""

    client_id: int
    started: float
    open_s: float | None = None
    """Until the websocket handshake completed."""
    ready_s: float | None = None
    """Until the client was in sync (Yjs: sync step 2 received; JSON: ``welcome`` received)."""


@dataclass(slots=True)
class WorkerResult:
    """Everything one worker observed, as raw records (the statistics are computed later)."""

    sends: list[tuple[int, int, float]] = field(default_factory=list)
    """``(client_id, seq, sent_at)`` for every edit that left the client."""
    arrivals: list[tuple[int, int, int, float]] = field(default_factory=list)
    """``(author_id, seq, receiver_id, arrived_at)`` for every marker seen by a receiver."""
    acks: list[float] = field(default_factory=list)
    """JSON only: seconds from sending an op to receiving its ack."""
    connects: list[ConnectRecord] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    """Clients that completed the initial sync (only they edit and count as receivers)."""
    errors: ErrorLog = field(default_factory=ErrorLog)
    skipped_edits: int = 0
    """Edits that were due but not sent before the phase ended (a JSON client waiting on acks)."""
    missing_acks: int = 0
    edit_started: float = 0.0
    edit_ended: float = 0.0

    def merge(self, other: WorkerResult) -> None:
        """Append another worker's records to this one."""
        self.sends.extend(other.sends)
        self.arrivals.extend(other.arrivals)
        self.acks.extend(other.acks)
        self.connects.extend(other.connects)
        self.ready.extend(other.ready)
        self.errors.merge(other.errors)
        self.skipped_edits += other.skipped_edits
        self.missing_acks += other.missing_acks
        self.edit_started = min(filter(None, (self.edit_started, other.edit_started)), default=0.0)
        self.edit_ended = max(self.edit_ended, other.edit_ended)
