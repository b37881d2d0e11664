"""Keeping every node's indexes in step with the table, through the fan-out broker.

A node that commits a cache change applies it to its own indexes (see
:mod:`server.cache.changes`) and publishes it on :data:`CHANNEL`; the other nodes apply it to
the scopes they have loaded. Messages (kinds):

* ``add`` - a JSON header line ``{"t": tenant, "s": scope key, "e": embedder, "i": id,
  "x": expiry (epoch seconds)}``, a newline, then the vector as little-endian float32;
* ``remove`` - ``{"ids": [...]}``;
* ``reset`` - ``{"tenant": id or null}``: drop the loaded scopes of one tenant (or all).

Missed messages (a sequence gap, a broker outage, a full publish queue) are never repaired
one by one: the receiver drops its loaded scopes, which reload from the table on next use.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from server.cache.index import IndexRegistry, ScopeId, Vector
from server.hub.broker import Broker, BrokerUnavailable, Envelope, Subscription

logger = logging.getLogger(__name__)

CHANNEL = "semantic-cache"
#: Messages sent in one ``publish_many``.
PUBLISH_BATCH = 64


@dataclass(frozen=True, slots=True)
class Added:
    """A committed insert or update of an entry's vector."""

    scope: ScopeId
    entry_id: str
    vector: Vector
    expires_at: float


@dataclass(frozen=True, slots=True)
class Removed:
    """Committed deletes."""

    entry_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reset:
    """Loaded scopes of one tenant (None: of every tenant) are stale."""

    tenant_id: str | None


Change = Added | Removed | Reset


def apply_change(registry: IndexRegistry, change: Change) -> None:
    """Apply one change to this node's indexes."""
    if isinstance(change, Added):
        registry.add(change.scope, change.entry_id, change.vector, change.expires_at)
    elif isinstance(change, Removed):
        for entry_id in change.entry_ids:
            registry.remove(entry_id)
    elif change.tenant_id is None:
        registry.clear()
    else:
        registry.drop_tenant(change.tenant_id)


def encode_change(change: Change) -> tuple[str, bytes]:
    """The ``(kind, payload)`` of one change."""
    if isinstance(change, Added):
        tenant, scope_key, embedder = change.scope
        header = {"t": tenant, "s": scope_key, "e": embedder, "i": change.entry_id}
        header["x"] = change.expires_at  # type: ignore[assignment]
        vector = np.asarray(change.vector, dtype="<f4").tobytes()
        return "add", json.dumps(header).encode() + b"\n" + vector
    if isinstance(change, Removed):
        return "remove", json.dumps({"ids": list(change.entry_ids)}).encode()
    return "reset", json.dumps({"tenant": change.tenant_id}).encode()


def decode_change(kind: str, payload: bytes) -> Change:
    """The change in a received message; raises ``ValueError`` if it is malformed."""
    if kind == "add":
        header_bytes, sep, vector_bytes = payload.partition(b"\n")
        header = json.loads(header_bytes)
        if not sep or len(vector_bytes) % 4 or not vector_bytes:
            raise ValueError("add message without a float32 vector")
        scope = (str(header["t"]), str(header["s"]), str(header["e"]))
        vector = np.frombuffer(vector_bytes, dtype="<f4").astype(np.float32)
        return Added(scope, str(header["i"]), vector, float(header["x"]))
    if kind == "remove":
        ids = json.loads(payload)["ids"]
        if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
            raise ValueError("remove message without a list of ids")
        return Removed(tuple(ids))
    if kind == "reset":
        tenant = json.loads(payload)["tenant"]
        if tenant is not None and not isinstance(tenant, str):
            raise ValueError("reset message with a tenant that is not text")
        return Reset(tenant)
    raise ValueError(f"unknown message kind {kind!r}")


class IndexSync:
    """Publishes this node's committed changes and applies the other nodes' changes."""

    def __init__(self, broker: Broker, registry: IndexRegistry, *, queue_limit: int) -> None:
        self._broker = broker
        self._registry = registry
        self._queue: asyncio.Queue[Change] = asyncio.Queue(maxsize=queue_limit)
        self._overflowed = False
        self._subscription: Subscription | None = None
        self._publisher: asyncio.Task[None] | None = None
        self.received = 0

    @property
    def active(self) -> bool:
        """Whether other nodes can exist (a private in-process broker has none)."""
        return not self._broker.single_node

    async def start(self) -> None:
        """Subscribe and start publishing (nothing to do on a single node)."""
        if not self.active:
            return
        self._subscription = await self._broker.subscribe(CHANNEL, self._on_envelope)
        self._broker.add_reconnect_listener(self._on_reconnect)
        self._publisher = asyncio.create_task(self._publish_loop(), name="semantic-cache-sync")

    async def stop(self) -> None:
        """Stop publishing (queued changes are dropped: peers reload on their gap) and leave."""
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
            self._publisher = None
        if self._subscription is not None:
            self._broker.remove_reconnect_listener(self._on_reconnect)
            await self._subscription.unsubscribe()
            self._subscription = None

    def publish(self, changes: Sequence[Change]) -> None:
        """Queue changes for the other nodes (never blocks; overflow makes them reload)."""
        if self._publisher is None:
            return
        for change in changes:
            try:
                self._queue.put_nowait(change)
            except asyncio.QueueFull:
                self._overflowed = True
                return

    async def _publish_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < PUBLISH_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if self._overflowed:
                self._overflowed = False
                logger.warning("semantic cache: publish queue overflowed; peers will reload")
                batch = [Reset(None)]
            try:
                await self._broker.publish_many(CHANNEL, [encode_change(c) for c in batch])
            except BrokerUnavailable as exc:
                # Peers see a sequence gap on our next message and reload from the table.
                logger.warning("semantic cache: could not publish %d changes: %s", len(batch), exc)

    def _on_envelope(self, envelope: Envelope) -> None:
        self.received += 1
        if envelope.gap:
            self._registry.clear()
        try:
            change = decode_change(envelope.kind, envelope.payload)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "semantic cache: dropping a malformed %r message: %s", envelope.kind, exc
            )
            self._registry.clear()
            return
        apply_change(self._registry, change)

    def _on_reconnect(self) -> None:
        # Messages sent during the outage are lost: reload everything lazily.
        self._registry.clear()
