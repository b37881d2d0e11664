"""What a compose job looks like to watchers, and the in-process signal that it changed.

:class:`ComposeEvent` is one state of a job (status, stage, progress, then the result or the
error), built from its row. :class:`ChangeFeed` wakes event streams on this node the moment the
local runner changes a job; streams watching a job another node runs re-read it on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    """Wakes local waiters when a job changes. Holds nothing for jobs nobody waits on."""

    def __init__(self) -> None:
        self._signals: dict[int, asyncio.Event] = {}

    def notify(self, run_id: int) -> None:
        """Wake everyone waiting on ``run_id``."""
        signal = self._signals.pop(run_id, None)
        if signal is not None:
            signal.set()

    async def wait(self, run_id: int, timeout: float) -> None:
        """Return when ``run_id`` changes here, or after ``timeout`` seconds."""
        signal = self._signals.get(run_id)
        if signal is None:
            signal = self._signals[run_id] = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), timeout)
        if self._signals.get(run_id) is signal and not signal.is_set():
            # Timed out: drop the signal unless another waiter still holds it (they re-create).
            del self._signals[run_id]
