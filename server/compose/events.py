"""What a compose job looks like to watchers, and the in-process signal that it changed.

:class:`ComposeEvent` is one state of a job (status, stage, progress, then the result or the
error), built from its row. :class:`ChangeFeed` wakes event streams on this node the moment the
local runner changes a job; streams watching a job another node runs re-read it on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from storage.models import AgentComposeRun

#: Progress a job shows on entering each stage.
STAGE_PROGRESS: dict[str, int] = {"agent1": 10, "agent2": 40, "agent3": 70, "done": 100}
#: Statuses after which nothing changes any more.
TERMINAL = frozenset({"completed", "failed"})


@dataclass(frozen=True, slots=True)
class ComposeEvent:
    """One observable state of a job."""

    run_id: int
    status: str
    stage: str
    progress: int
    error: str | None
    cancelled: bool
    tenant_id: str | None
    session_id: str | None
    #: The judge's output once the job completed.
    result: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """Whether the job reached completed or failed."""
        return self.status in TERMINAL

    def key(self) -> tuple[str, str, int]:
        """What a watcher compares to tell whether the job moved."""
        return (self.status, self.stage, self.progress)

    def to_json(self) -> dict[str, Any]:
        """The event as sent to clients (SSE data, presence state)."""
        body: dict[str, Any] = {
            "id": self.run_id,
            "status": self.status,
            "stage": self.stage,
            "progress": self.progress,
            "cancelled": self.cancelled,
        }
        if self.error is not None:
            body["error"] = self.error
        if self.result is not None:
            body["result"] = self.result
        return body


def event_of(run: AgentComposeRun) -> ComposeEvent:
    """The event describing a job row (its result loaded)."""
    return ComposeEvent(
        run_id=run.id,
        status=run.status,
        stage=run.stage,
        progress=run.progress,
        error=run.error,
        cancelled=run.cancel_requested_at is not None and run.status == "failed",
        tenant_id=run.tenant_id,
        session_id=run.session_id,
        result=run.result.agent3_json if run.result is not None else None,
    )


class ComposeObserver(Protocol):
    """Something told about every change the local runner makes (e.g. session presence)."""

    def changed(self, event: ComposeEvent) -> None:
        """Called on the event loop, must not block; schedule any I/O."""
        ...


class ChangeFeed:
    """Wakes local watchers when a job changes. Holds nothing for jobs nobody watches.

    A watcher registers *before* it reads the job and clears its signal before each read, so a
    change made while it reads or writes out an event is never missed (only coalesced).
    """

    def __init__(self) -> None:
        self._listeners: dict[int, set[asyncio.Event]] = {}

    def notify(self, run_id: int) -> None:
        """Wake everyone watching ``run_id``."""
        for signal in self._listeners.get(run_id, ()):
            signal.set()

    @contextlib.contextmanager
    def listen(self, run_id: int) -> Iterator[asyncio.Event]:
        """A signal set whenever ``run_id`` changes here, for the ``with`` block."""
        signal = asyncio.Event()
        self._listeners.setdefault(run_id, set()).add(signal)
        try:
            yield signal
        finally:
            listeners = self._listeners.get(run_id)
            if listeners is not None:
                listeners.discard(signal)
                if not listeners:
                    del self._listeners[run_id]
