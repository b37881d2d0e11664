"""The application factory: a FastAPI app (REST under ``/api``, OpenAPI at ``/openapi.json``,
docs at ``/docs``) with the raw Starlette websocket endpoint beside it.

``create_app(settings)`` connects nothing: every shared resource (engine, history writer, hub) is
built in the lifespan and torn down in reverse order, flushing everything on shutdown.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import uuid
from collections.abc import AsyncIterator

from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.routing import Route, WebSocketRoute

from crdt.merge import fold_updates, merge_updates
from server.api import api_router
from server.api.handlers import install_error_handlers
from server.cache import create_cache_service
from server.compose.setup import compose_runner
from server.health import healthz, readyz
from server.hub.awareness import AwarenessLimits
from server.hub.broker import create_broker
from server.hub.composer import ComposerPresence
from server.hub.endpoint import collaboration_socket
from server.hub.limits import SocketGuard
from server.hub.presence import PresenceTracker
from server.hub.registry import Hub
from server.hub.revocation import CredentialWatch
from server.llm.secrets import SecretBox
from server.llm.setup import llm_registry
from server.login_purge import LoginPurger
from server.logs import RequestIds
from server.metrics import AppMetrics, HttpMetrics, metrics_endpoint
from server.metrics_port import MetricsPort
from server.origins import ApiCors
from server.runs.leases import RunLeases
from server.runs.setup import run_service
from server.security_headers import SecurityHeaders
from server.services import Services
from server.settings import Settings
from server.version import __version__
from server.web import web_routes
from storage.engine import (
    create_autocommit_session_factory,
    create_engine,
    create_session_factory,
)
from storage.history_writer import HistoryWriter
from storage.repositories.admission import admission_reader
from storage.rls import rls_session_factory
from storage.sqlite_thread import sqlite_file_of

logger = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app for ``settings``; resources are created when it starts."""
    metrics = AppMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
        )
        sessions = (
            rls_session_factory(engine) if settings.postgres_rls else create_session_factory(engine)
        )
        redis = (
            Redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
            if settings.redis_url
            else None
        )
        node_id = settings.node_id or uuid.uuid4().hex[:12]
        broker = create_broker(settings.redis_url, node_id)
        clustered = settings.redis_url is not None
        try:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(broker)
                writer = await stack.enter_async_context(
                    HistoryWriter(
                        sessions,
                        linger_seconds=settings.history_flush_ms / 1000,
                        merge=merge_updates,
                        fold=fold_updates,
                        sqlite_file=sqlite_file_of(settings.database_url),
                        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                        max_pending_edits=settings.history_max_pending_edits,
                        max_pending_bytes=settings.history_max_pending_bytes,
                        touch_seconds=settings.session_touch_seconds,
                    )
                )
                presence = await stack.enter_async_context(
                    PresenceTracker(
                        # SQLite: each mark commits alone, holding no write lock across turns
                        # of the event loop (PostgreSQL locks only the rows, and needs RLS).
                        create_autocommit_session_factory(engine)
                        if settings.is_sqlite
                        else sessions,
                        interval=settings.presence_debounce_seconds,
                    )
                )
                hub = await stack.enter_async_context(
                    Hub(
                        sessions,
                        writer,
                        presence,
                        broker,
                        unload_grace_seconds=settings.unload_grace_seconds,
                        awareness_limits=AwarenessLimits.from_settings(settings),
                        op_ids_per_user=settings.op_ids_per_user,
                        op_id_max_chars=settings.op_id_max_chars,
                        max_document_bytes=settings.max_document_bytes,
                        crdt_max_waiting_updates=settings.crdt_max_waiting_updates,
                    )
                )
                admission = await stack.enter_async_context(
                    admission_reader(settings.database_url, sessions)
                )
                credentials = await stack.enter_async_context(
                    CredentialWatch(hub, broker, sessions)
                )
                await stack.enter_async_context(
                    LoginPurger(
                        sessions, credentials, interval=settings.login_purge_interval_seconds
                    )
                )
                llm = llm_registry(settings)
                stack.push_async_callback(llm.aclose)
                composer = await stack.enter_async_context(
                    ComposerPresence(hub, linger_seconds=settings.compose_presence_linger_seconds)
                )
                compose = await stack.enter_async_context(
                    compose_runner(settings, sessions, llm, node_id=node_id, observers=[composer])
                )
                cache = await stack.enter_async_context(
                    create_cache_service(settings, sessions, broker)
                )
                cache.set_providers(lambda _tenant, model: llm.shared(model))
                run_leases = await stack.enter_async_context(
                    RunLeases(
                        sessions,
                        node_id,
                        lease_seconds=settings.run_lease_seconds,
                        sweep_seconds=settings.run_sweep_seconds,
                    )
                )
                app.state.services = Services(
                    settings=settings,
                    engine=engine,
                    sessions=sessions,
                    hub=hub,
                    broker=broker,
                    admission=admission,
                    credentials=credentials,
                    llm=llm,
                    secrets=SecretBox.from_setting(settings.secret_key),
                    redis=redis,
                    compose=compose,
                    cache=cache,
                    run_leases=run_leases,
                    guard=SocketGuard.from_settings(settings),
                )
                # Refresh rules re-run cached requests through the run service.
                cache.set_refresher(run_service(app.state.services).refresh)
                metrics.bind(app.state.services)
                stack.callback(metrics.unbind)
                if settings.metrics_port is not None:
                    await stack.enter_async_context(
                        MetricsPort(
                            metrics,
                            settings.host,
                            settings.metrics_port,
                            max_head_bytes=settings.metrics_max_head_bytes,
                            head_timeout_seconds=settings.head_timeout_seconds,
                        )
                    )
                logger.info(
                    "prompt-studio node %s ready (database: %s, fan-out: %s)",
                    node_id,
                    engine.url.render_as_string(),
                    "redis" if clustered else "in-process",
                )
                # Everything built so far (modules, the app, the pools) lives as long as the
                # process: leave it out of the garbage collector's full collections, which
                # otherwise stall the event loop for tens of ms while rooms are busy.
                gc.collect()
                gc.freeze()
                yield
        finally:
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Prompt Studio",
        version=__version__,
        summary="Real-time collaborative prompt engineering: REST API",
        description=(
            "Everything that is not live. The live editor speaks y-websocket and a JSON op "
            "protocol on `GET /ws/{share_token}` (see the README)."
        ),
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.metrics = metrics
    install_error_handlers(app)
    # Outermost last: CORS preflights answered by ApiCors also get the security headers.
    app.add_middleware(ApiCors, allowed=settings.allowed_origins)
    app.add_middleware(SecurityHeaders, docs_path=app.docs_url)
    app.add_middleware(HttpMetrics, metrics=metrics)
    # Outermost: every line logged about a request, the other middlewares' included, has its id.
    app.add_middleware(RequestIds)
    app.include_router(api_router(), prefix="/api")
    # Raw Starlette routes, outside the OpenAPI document: probes and the websocket endpoint
    # (which keeps the direct transport of server.ws_protocol).
    app.router.routes.extend(
        [
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *(
                [Route("/metrics", metrics_endpoint, methods=["GET"])]
                if settings.metrics_enabled and settings.metrics_port is None
                else []
            ),
            WebSocketRoute("/ws/{share_token}", collaboration_socket),
            *web_routes(),
        ]
    )
    return app
