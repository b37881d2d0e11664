"""The fan-out broker: a small publish/subscribe interface between server nodes.

A broker carries binary messages (:class:`Envelope`) on named channels (one per collaboration
session) between the nodes serving that session. Two backends share one contract, which
``tests/integration/test_broker_contract.py`` runs against each:

* :class:`~server.hub.memory_broker.MemoryBroker` - in-process; the default (one node).
* :class:`~server.hub.redis_broker.RedisBroker` - Redis pub/sub, for any number of nodes.

:func:`create_broker` picks one from a URL (``REDIS_URL``). Start it with ``async with`` (or
``start``/``stop``); :attr:`Broker.healthy` says whether the backend currently works.

Contract, for every backend:

* ``publish`` numbers each message per channel (``seq`` 1, 2, 3, ...) and never blocks forever:
  it raises :class:`BrokerUnavailable` when the backend is down or too slow.
* ``subscribe`` returns once the subscription is live, so a message published after it returns
  is delivered (open a document as: subscribe, load, then exchange state with peers). While
  the backend is down it returns at once and the subscription goes live on reconnect.
* Handlers are synchronous, run on the event loop, never inside ``publish``'s call stack, and
  see every envelope from *other* nodes in publish order; a node's own messages are dropped by
  sender id, so node ids must be unique per running process. A handler that raises is logged
  and does not stop delivery to it or to anyone else.
* Sequence gaps: per channel, the receiver remembers the last ``seq`` seen from each sender and
  flags an envelope with ``gap=True`` when messages from that sender were missed:

  - the first envelope seen from a sender is never a gap (we were not listening before);
  - ``seq == last + 1`` is no gap;
  - ``seq == 1`` after anything is a sender restart: tracking resets, no gap;
  - ``seq > last + 1`` is a gap (messages were lost, e.g. during an outage or a failed
    publish - a failed publish still consumes its ``seq``);
  - ``1 < seq <= last`` is a gap too: the sender restarted and we missed the first ``seq - 1``
    messages of its new life (pub/sub neither reorders nor duplicates, so this is the only
    explanation). In doubt we flag: a false gap costs one resync, a missed gap costs a
    divergent document.

  Tracking for a channel is forgotten when its last local subscription ends.
* After a backend outage, reconnect listeners are called once the backend works again, so the
  hub can resync every open document (messages sent meanwhile are lost).
"""

from __future__ import annotations

from server.hub.broker_base import (
    DEFAULT_CHANNEL_PREFIX,
    DEFAULT_PUBLISH_TIMEOUT,
    Broker,
    BrokerError,
    BrokerUnavailable,
    EnvelopeHandler,
    ReconnectListener,
    Subscription,
)
from server.hub.broker_envelope import (
    Envelope,
    MalformedFrame,
    SequenceTracker,
    decode_envelope,
    encode_envelope,
)
from server.hub.memory_broker import MemoryBroker, MemoryBus
from server.hub.redis_broker import RedisBroker

__all__ = [
    "DEFAULT_CHANNEL_PREFIX",
    "DEFAULT_PUBLISH_TIMEOUT",
    "Broker",
    "BrokerError",
    "BrokerUnavailable",
    "Envelope",
    "EnvelopeHandler",
    "MalformedFrame",
    "MemoryBroker",
    "MemoryBus",
    "ReconnectListener",
    "RedisBroker",
    "SequenceTracker",
    "Subscription",
    "create_broker",
    "decode_envelope",
    "encode_envelope",
]


def create_broker(
    redis_url: str | None,
    node_id: str,
    *,
    channel_prefix: str = DEFAULT_CHANNEL_PREFIX,
) -> Broker:
    """The broker for ``redis_url`` (``REDIS_URL``), not yet started.

    ``None``, an empty string or ``memory://`` give an in-process :class:`MemoryBroker` (one
    node); ``redis://``, ``rediss://`` and ``unix://`` URLs give a :class:`RedisBroker`.
    """
    url = (redis_url or "").strip()
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if not url or scheme == "memory":
        return MemoryBroker(node_id)
    if scheme in {"redis", "rediss", "unix"}:
        return RedisBroker(url, node_id, channel_prefix=channel_prefix)
    raise ValueError(
        "broker URL must start with memory://, redis://, rediss:// or unix:// "
        f"(got {scheme + '://' if scheme else 'no scheme'})"
    )
