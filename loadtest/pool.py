"""Running workers in this event loop or in child processes, behind one interface.

One event loop can hold a few thousand busy sockets; past that (or to use more than one core
when nothing is pinned) the clients are split over ``--procs`` processes. A process worker is a
``multiprocessing`` *spawn* child running its own :class:`~loadtest.worker.Worker`; the parent
drives it through a pipe with the same phase calls a local worker gets. Every wait on the pipe is
bounded, and :meth:`ProcessHandle.stop` always reaps the child (terminate, then kill).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from abc import ABC, abstractmethod
from multiprocessing.connection import Connection
from typing import Any

from loadtest.model import WorkerPlan, WorkerResult
from loadtest.worker import Worker

_SPAWN = multiprocessing.get_context("spawn")
_STARTUP_TIMEOUT = 60.0
_PHASE_SLACK = 60.0
_JOIN_TIMEOUT = 10.0


class WorkerHandle(ABC):
    """One worker, wherever it runs."""

    pid: int

    @abstractmethod
    async def start(self) -> None:
        """Get the worker ready to take commands."""

    @abstractmethod
    async def connect(self, connect_at: float) -> None:
        """Phase 1: open every client."""

    @abstractmethod
    async def run(self, start_at: float) -> dict[int, int]:
        """Phase 2: send the edits; returns edits sent per client."""

    @abstractmethod
    async def drain(self, room_totals: dict[int, int], sent: dict[int, int]) -> WorkerResult:
        """Phases 3 and 4: wait for stragglers, close, hand back the records."""

    @abstractmethod
    async def stop(self) -> None:
        """Release everything (idempotent; also after a failure)."""


class LocalHandle(WorkerHandle):
    """A worker in the runner's own event loop."""

    def __init__(self, plan: WorkerPlan, total_clients: int) -> None:
        """Wrap a fresh :class:`Worker`."""
        self.pid = os.getpid()
        self.worker = Worker(plan, total_clients)

    async def start(self) -> None:
        """Nothing to start."""

    async def connect(self, connect_at: float) -> None:
        """Open every client."""
        await self.worker.connect_all(connect_at)

    async def run(self, start_at: float) -> dict[int, int]:
        """Send the edits."""
        return await self.worker.run_edits(start_at)

    async def drain(self, room_totals: dict[int, int], sent: dict[int, int]) -> WorkerResult:
        """Drain and close."""
        return await self.worker.drain(room_totals, sent)

    async def stop(self) -> None:
        """Close whatever is still open."""
        await self.worker.close_all()


def _child_main(plan: WorkerPlan, total_clients: int, conn: Connection) -> None:
    """Entry point of a worker process: serve phase commands until ``stop``."""
    asyncio.run(_child_serve(Worker(plan, total_clients), conn))


async def _child_serve(worker: Worker, conn: Connection) -> None:
    conn.send(("hello", None))
    try:
        while True:
            command, arg = await asyncio.to_thread(conn.recv)
            if command == "connect":
                await worker.connect_all(arg)
                conn.send(("connected", None))
            elif command == "run":
                conn.send(("sent", await worker.run_edits(arg)))
            elif command == "drain":
                conn.send(("result", await worker.drain(*arg)))
            else:
                return
    except EOFError:
        return  # the parent is gone
    finally:
        await worker.close_all()


class ProcessHandle(WorkerHandle):
    """A worker in a child process."""

    def __init__(self, plan: WorkerPlan, total_clients: int) -> None:
        """Prepare (not start) the child."""
        self.plan = plan
        self._parent, child = _SPAWN.Pipe()
        self._process = _SPAWN.Process(
            target=_child_main, args=(plan, total_clients, child), daemon=True
        )
        self._child_end = child
        self.pid = 0

    async def start(self) -> None:
        """Start the child and wait until its event loop runs."""
        self._process.start()
        self._child_end.close()
        self.pid = self._process.pid or 0
        await self._expect("hello", _STARTUP_TIMEOUT)

    async def connect(self, connect_at: float) -> None:
        """Open every client in the child."""
        self._parent.send(("connect", connect_at))
        plan = self.plan
        rounds = len(plan.clients) / max(1, plan.connect_concurrency) + 1
        bound = connect_at - time.monotonic() + plan.join_window
        await self._expect("connected", bound + plan.connect_timeout * rounds + _PHASE_SLACK)

    async def run(self, start_at: float) -> dict[int, int]:
        """Send the edits in the child."""
        self._parent.send(("run", start_at))
        bound = start_at - time.monotonic() + self.plan.duration + _PHASE_SLACK
        sent: dict[int, int] = await self._expect("sent", bound)
        return sent

    async def drain(self, room_totals: dict[int, int], sent: dict[int, int]) -> WorkerResult:
        """Drain and close in the child; receive its records."""
        self._parent.send(("drain", (room_totals, sent)))
        result: WorkerResult = await self._expect("result", self.plan.drain_timeout + _PHASE_SLACK)
        return result

    async def stop(self) -> None:
        """Ask the child to stop, then make sure it has."""
        with contextlib.suppress(OSError, ValueError):
            self._parent.send(("stop", None))
        if self._process.pid is not None:
            await asyncio.to_thread(self._process.join, _JOIN_TIMEOUT)
            if self._process.is_alive():
                self._process.terminate()
                await asyncio.to_thread(self._process.join, _JOIN_TIMEOUT)
            if self._process.is_alive():
                self._process.kill()
                await asyncio.to_thread(self._process.join, _JOIN_TIMEOUT)
        self._parent.close()

    async def _expect(self, kind: str, timeout: float) -> Any:
        ready = await asyncio.to_thread(self._parent.poll, max(1.0, timeout))
        if not ready:
            raise TimeoutError(f"worker {self.pid}: no {kind!r} within {timeout:.0f}s")
        got, payload = self._parent.recv()
        if got != kind:
            raise RuntimeError(f"worker {self.pid}: expected {kind!r}, got {got!r}")
        return payload


def make_handles(plans: list[WorkerPlan], *, in_process: bool) -> list[WorkerHandle]:
    """A handle per plan: local when there is one plan and ``in_process``, else processes."""
    total = sum(len(p.clients) for p in plans)
    if in_process and len(plans) == 1:
        return [LocalHandle(plans[0], total)]
    return [ProcessHandle(plan, total) for plan in plans]
