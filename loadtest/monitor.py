"""Sampling CPU and memory of the server and of the load generator itself, every ~0.5 s.

CPU is psutil's ``cpu_percent`` (100 = one core fully busy) summed over the server processes
(every node when the server scales out) and their children (the generator: over its own
processes only — the servers it starts are its children too); memory is the resident set size
(RSS), summed likewise. The load generator is sampled too, because a saturated generator
inflates latencies: a run whose generator sat near 100% of its core measured the generator as
much as the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field

import psutil

SAMPLE_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample; ``t`` is ``time.monotonic()``."""

    t: float
    server_cpu: float | None
    server_rss: int | None
    loadgen_cpu: float
    loadgen_rss: int


class _Tree:
    """A process and its descendants, keeping psutil handles so ``cpu_percent`` has a baseline."""

    def __init__(self, pids: list[int], *, descendants: bool) -> None:
        self._roots = pids
        self._descendants = descendants
        self._known: dict[int, psutil.Process] = {}
        self.sample()  # the first cpu_percent call of each process only sets its baseline

    def sample(self) -> tuple[float, int] | None:
        procs: list[psutil.Process] = []
        for pid in self._roots:
            try:
                root = self._known.get(pid) or psutil.Process(pid)
                procs.append(root)
                if self._descendants:
                    procs.extend(root.children(recursive=True))
            except psutil.Error:
                continue
        if not procs:
            return None
        cpu = 0.0
        rss = 0
        alive: dict[int, psutil.Process] = {}
        for proc in procs:
            handle = self._known.get(proc.pid, proc)
            try:
                with handle.oneshot():
                    cpu += handle.cpu_percent(None)
                    rss += handle.memory_info().rss
            except psutil.Error:
                continue
            alive[proc.pid] = handle
        self._known = alive
        return cpu, rss


def process_rss(pid: int) -> int | None:
    """The resident set size of one process (bytes), or None if it is gone."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


@dataclass
class Monitor:
    """Samples the server pids (summed) and the generator's processes in a background task."""

    server_pids: list[int]
    loadgen_pids: list[int] = field(default_factory=lambda: [os.getpid()])
    samples: list[Sample] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _server: _Tree | None = None
    _loadgen: _Tree | None = None

    def start(self) -> None:
        """Start sampling."""
        self._server = _Tree(self.server_pids, descendants=True) if self.server_pids else None
        self._loadgen = _Tree(self.loadgen_pids, descendants=False)
        self._task = asyncio.create_task(self._run(), name="monitor")

    def watch_loadgen(self, pids: list[int]) -> None:
        """Sample these generator processes from now on (worker processes once started)."""
        self.loadgen_pids = pids
        self._loadgen = _Tree(pids, descendants=False)

    def mark(self, name: str) -> float:
        """Record the moment a phase begins or ends; returns it."""
        self.marks[name] = now = time.monotonic()
        return now

    def sample_now(self) -> Sample:
        """Take (and keep) one sample immediately."""
        server = self._server.sample() if self._server else None
        loadgen = self._loadgen.sample() if self._loadgen else None
        sample = Sample(
            t=time.monotonic(),
            server_cpu=server[0] if server else None,
            server_rss=server[1] if server else None,
            loadgen_cpu=loadgen[0] if loadgen else 0.0,
            loadgen_rss=loadgen[1] if loadgen else 0,
        )
        self.samples.append(sample)
        return sample

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.sample_now()

    async def stop(self) -> None:
        """Stop sampling (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
