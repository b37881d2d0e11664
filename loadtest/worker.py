"""A worker: the clients of one event loop, driven through connect → edit → drain → close.

The runner drives every worker through the same phases at the same moments (one clock for all
processes, see :mod:`loadtest.model`):

1. :meth:`Worker.connect_all` — open every client, at most ``connect_concurrency`` attempts at
   once: with a ``join_window``, spread evenly over it (client ``i`` of ``N`` starts at
   ``connect_at + i * join_window / N``); without one, one client per room first, then the rest.
   Only clients in sync by the end take part further.
2. :meth:`Worker.run_edits` — each client sends ``round(duration * edit_rate)`` edits on a fixed
   schedule (a random phase, then every ``1 / edit_rate`` seconds); an edit that cannot go out
   before the phase ends (a JSON client still waiting for an ack) is *skipped* and counted.
3. :meth:`Worker.drain` — wait, at most ``drain_timeout`` seconds, until every live client has
   received every edit the other clients of its room sent (the runner tells each worker the
   per-room totals) and every JSON op is acknowledged. Whatever is still missing then is lost.
4. :meth:`Worker.close_all`.

Python's cyclic garbage collector is off from the start of phase 2 to the end of phase 3: with
hundreds of thousands of delivery records alive, each full collection stopped the generator for
80-100 ms, and that pause showed up as latency of whichever server was measured. Runs are
bounded, so the memory this holds back is bounded too; reference counting still frees almost
everything at once.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections import Counter

from loadtest.client_base import Client
from loadtest.json_client import JsonOpClient
from loadtest.model import ClientSpec, WorkerPlan, WorkerResult
from loadtest.yjs_client import Observer, YjsClient

_DRAIN_POLL_SECONDS = 0.05
_CLOSE_CONCURRENCY = 500


def make_client(
    spec: ClientSpec, result: WorkerResult, rng: random.Random, plan: WorkerPlan
) -> Client:
    """The client for the spec's protocol."""
    if spec.protocol == "yjs":
        observer: Observer = "delta" if plan.yjs_observer == "delta" else "update"
        return YjsClient(spec, result, rng, observer=observer)
    return JsonOpClient(spec, result, rng)


def _pause_gc() -> None:
    """Collect once, then keep the collector from running until :func:`_resume_gc`."""
    if gc.isenabled():
        gc.collect()
        gc.freeze()
        gc.disable()


def _resume_gc() -> None:
    if not gc.isenabled():
        gc.unfreeze()
        gc.enable()


async def sleep_until(moment: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``moment`` (at once if it has)."""
    delay = moment - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


class Worker:
    """Runs one plan's clients in the current event loop."""

    def __init__(self, plan: WorkerPlan, total_clients: int) -> None:
        """``total_clients`` is the number of clients over all workers (to space the joins)."""
        self.plan = plan
        self.total_clients = max(1, total_clients)
        self.result = WorkerResult()
        self.clients: list[Client] = []
        self._rng = random.Random(plan.seed)

    async def connect_all(self, connect_at: float) -> None:
        """Open every client (phase 1)."""
        plan = self.plan
        gate = asyncio.Semaphore(plan.connect_concurrency)

        async def one(spec: ClientSpec) -> None:
            await sleep_until(connect_at + spec.client_id * plan.join_window / self.total_clients)
            rng = random.Random(self._rng.random())
            client = make_client(spec, self.result, rng, plan)
            async with gate:
                ready = await client.connect(plan.connect_timeout)
            if ready:
                self.clients.append(client)
                self.result.ready.append(spec.client_id)

        if plan.join_window > 0:  # a storm: everyone at once, as scheduled
            await asyncio.gather(*(one(spec) for spec in plan.clients))
            return
        # First one client per room, then the rest: a room's first join creates the room, and
        # pycrdt-websocket loses joins that race with the creation of their room.
        leaders: dict[int, ClientSpec] = {}
        for spec in plan.clients:
            leaders.setdefault(spec.room, spec)
        await asyncio.gather(*(one(spec) for spec in leaders.values()))
        first = {spec.client_id for spec in leaders.values()}
        await asyncio.gather(*(one(s) for s in plan.clients if s.client_id not in first))

    async def run_edits(self, start_at: float) -> dict[int, int]:
        """Send every client's edits on schedule (phase 2); returns edits sent per client."""
        plan = self.plan
        deadline = start_at + plan.duration
        self.result.edit_started = start_at
        _pause_gc()
        if plan.edit_rate > 0:
            await asyncio.gather(*(self._edit_loop(c, start_at, deadline) for c in self.clients))
        else:
            await sleep_until(deadline)  # idle: just hold the connections
        self.result.edit_ended = time.monotonic()
        return dict(Counter(client for client, _seq, _at in self.result.sends))

    async def _edit_loop(self, client: Client, start_at: float, deadline: float) -> None:
        rate = self.plan.edit_rate
        count = round(self.plan.duration * rate)
        phase = self._rng.random() / rate
        for seq in range(count):
            await sleep_until(start_at + phase + seq / rate)
            if not client.alive or not await client.edit(seq, deadline):
                self.result.skipped_edits += count - seq
                return

    async def drain(self, room_totals: dict[int, int], sent: dict[int, int]) -> WorkerResult:
        """Wait for deliveries and acks still in flight (phase 3), then close (phase 4)."""
        end = time.monotonic() + self.plan.drain_timeout
        # A bounded poll: cheaper than waking on every arrival, and it ends by itself.
        while time.monotonic() < end and not self._drained(room_totals, sent):  # noqa: ASYNC110
            await asyncio.sleep(_DRAIN_POLL_SECONDS)
        _resume_gc()
        self.result.missing_acks = sum(1 for c in self.clients if c.busy)
        await self.close_all()
        return self.result

    def _drained(self, room_totals: dict[int, int], sent: dict[int, int]) -> bool:
        for client in self.clients:
            if not client.alive:
                continue  # it can receive nothing more; what it missed is lost
            if client.busy:
                return False
            expected = room_totals.get(client.spec.room, 0) - sent.get(client.client_id, 0)
            if client.received < expected:
                return False
        return True

    async def close_all(self) -> None:
        """Close every client, a bounded number at a time."""
        _resume_gc()
        gate = asyncio.Semaphore(_CLOSE_CONCURRENCY)

        async def one(client: Client) -> None:
            async with gate:
                await client.close()

        await asyncio.gather(*(one(c) for c in self.clients))
