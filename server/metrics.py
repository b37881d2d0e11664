"""``GET /metrics``: the server's state in the Prometheus text format.

Each app has a registry of its own (several apps in one test process never share a metric).
Most values are read at scrape time from counters the hub, the history writer, the broker and
the database pool keep anyway (:class:`_LiveCollector`), so the relay path pays nothing for
them; only the two latency histograms and the HTTP request counter are observed as they happen.
HTTP requests are labelled by route *template* (``/api/prompts/{prompt_id}``), never by the raw
path, so no id or token ever becomes a label; a path no route matched is ``unmatched``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from server.services import Services

# Seconds; fan-out is a tick (sub-millisecond), a group commit milliseconds to seconds.
FANOUT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
UNMATCHED_ROUTE = "unmatched"


class AppMetrics:
    """The metrics of one app: its registry, the observed metrics, and the live collector."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.services: Services | None = None
        self.http_requests = Counter(
            "prompt_studio_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.fanout_seconds = Histogram(
            "prompt_studio_fanout_seconds",
            "Delay between a Yjs update being applied and its broadcast to the room's clients.",
            buckets=FANOUT_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "prompt_studio_history_commit_seconds",
            "Duration of the history writer's successful group commits.",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_LiveCollector(self))

    def bind(self, services: Services) -> None:
        """Start reading ``services`` (called in the lifespan once they exist)."""
        self.services = services
        services.hub.traffic.on_fanout = self.fanout_seconds.observe
        services.hub.writer.on_commit = self.commit_seconds.observe

    def unbind(self) -> None:
        """Stop reading the services (they are being torn down)."""
        self.services = None

    def render(self) -> bytes:
        """The current exposition text."""
        return generate_latest(self.registry)


class _LiveCollector:
    """Reads the running server's own counters at scrape time."""

    def __init__(self, metrics: AppMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """Yield every live metric (nothing before the app has started)."""
        services = self._metrics.services
        if services is None:
            return
        yield from _hub_metrics(services)
        yield from _writer_metrics(services)
        yield from _broker_metrics(services)
        yield _pool_in_use(services)


def _hub_metrics(services: Services) -> Iterator[Metric]:
    hub = services.hub
    rooms = list(hub.rooms.values())
    by_protocol = {"yjs": 0, "json": 0, "undecided": 0}
    for room in rooms:
        for conn in room.connections:
            by_protocol[conn.protocol.value if conn.protocol is not None else "undecided"] += 1
    connections = GaugeMetricFamily(
        "prompt_studio_connections",
        "Open collaboration websockets by protocol (undecided: no frame seen yet).",
        labels=["protocol"],
    )
    for protocol, count in by_protocol.items():
        connections.add_metric([protocol], count)
    yield connections
    yield GaugeMetricFamily(
        "prompt_studio_rooms_loaded", "Documents loaded on this node.", value=len(rooms)
    )
    for direction, counts in (
        ("in", hub.traffic.inbound),
        ("out", hub.traffic.outbound),
    ):
        family = CounterMetricFamily(
            f"prompt_studio_messages_{direction}",
            f"Websocket messages {'received' if direction == 'in' else 'sent'}, by type.",
            labels=["protocol", "type"],
        )
        for (protocol, kind), count in sorted(counts.items()):
            family.add_metric([protocol, kind], count)
        yield family
    yield CounterMetricFamily(
        "prompt_studio_cluster_gaps",
        "Sequence gaps seen on document channels (each healed by a resync).",
        value=hub.cluster_gaps,
    )
    yield CounterMetricFamily(
        "prompt_studio_cluster_resyncs",
        "State-vector resyncs requested from the other nodes.",
        value=hub.cluster_resyncs,
    )


def _writer_metrics(services: Services) -> Iterator[Metric]:
    writer = services.hub.writer
    backlog = writer.backlog
    yield GaugeMetricFamily(
        "prompt_studio_history_backlog_edits",
        "Edits applied but not yet durable (the history writer's queue).",
        value=backlog.edits,
    )
    yield GaugeMetricFamily(
        "prompt_studio_history_backlog_bytes",
        "Bytes the history writer's queue is counted as.",
        value=backlog.bytes,
    )
    yield CounterMetricFamily(
        "prompt_studio_history_refused_edits",
        "Edits refused because the history backlog was full.",
        value=backlog.refused,
    )
    yield CounterMetricFamily(
        "prompt_studio_history_commits", "Successful group commits.", value=writer.commits
    )
    yield CounterMetricFamily(
        "prompt_studio_history_failures",
        "Failed commits and compactions (each failed commit is retried after a back-off).",
        value=writer.failures,
    )


def _broker_metrics(services: Services) -> Iterator[Metric]:
    broker = services.broker
    yield CounterMetricFamily(
        "prompt_studio_broker_published",
        "Messages published to the other nodes.",
        value=broker.published,
    )
    yield CounterMetricFamily(
        "prompt_studio_broker_publish_failures",
        "Publishes that failed or timed out.",
        value=broker.publish_failures,
    )


def _pool_in_use(services: Services) -> Metric:
    pool = services.engine.pool
    checkedout = getattr(pool, "checkedout", None)
    return GaugeMetricFamily(
        "prompt_studio_db_pool_in_use",
        "Database connections checked out of the pool.",
        value=checkedout() if callable(checkedout) else 0,
    )


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: the exposition text of this app."""
    metrics: AppMetrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


class HttpMetrics:
    """Counts every HTTP response by route template, method and status."""

    def __init__(self, app: ASGIApp, *, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, remembering its status; count it when it is answered."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception with no response still counts, as the 500 it becomes

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.http_requests.labels(
                route_template(scope), _method(scope), str(status)
            ).inc()


# Anything else (an attacker's verb) is one label, not a new series each.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in _METHODS else "other"


def route_template(scope: Scope) -> str:
    """The path template of the route that served ``scope``, or ``unmatched``.

    FastAPI keeps the full template of an included router's route (prefix and all) in its
    per-request context; a route without one (the raw Starlette routes beside the API) is found
    by matching the request against the app's top-level routes, as the router did.
    """
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None)
    if isinstance(template, str) and template:
        return template
    app = scope.get("app")
    partial: str | None = None  # a path matched with another method: the 405's route
    for route in getattr(getattr(app, "router", None), "routes", ()):
        if not isinstance(route, Route | Mount):
            continue
        match = route.matches(scope)[0]
        if match is Match.FULL:
            return route.path or UNMATCHED_ROUTE
        if match is Match.PARTIAL and partial is None:
            partial = route.path
    return partial or UNMATCHED_ROUTE
