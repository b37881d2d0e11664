"""The Starlette application factory.

``create_app(settings)`` connects nothing: every shared resource (engine, history writer, hub) is
built in the lifespan and torn down in reverse order, flushing everything on shutdown.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import uuid
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute

from crdt.merge import fold_updates, merge_updates
from server.api import routes as api_routes
from server.errors import ApiError, error_response
from server.health import healthz, readyz
from server.hub.broker import create_broker
from server.hub.endpoint import collaboration_socket
from server.hub.presence import PresenceTracker
from server.hub.registry import Hub
from server.services import Services
from server.settings import Settings
from storage.engine import create_engine, create_session_factory
from storage.history_writer import HistoryWriter
from storage.repositories.admission import admission_reader
from storage.sqlite_thread import sqlite_file_of

logger = logging.getLogger(__name__)


def create_app(settings: Settings) -> Starlette:
    """Build the ASGI app for ``settings``; resources are created when it starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        sessions = create_session_factory(engine)
        redis = (
            Redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
            if settings.redis_url
            else None
        )
        node_id = settings.node_id or uuid.uuid4().hex[:12]
        broker = create_broker(settings.redis_url, node_id)
        clustered = settings.redis_url is not None
        try:
            async with (
                broker,
                HistoryWriter(
                    sessions,
                    linger_seconds=settings.history_flush_ms / 1000,
                    merge=merge_updates,
                    fold=fold_updates,
                    sqlite_file=sqlite_file_of(settings.database_url),
                ) as writer,
                PresenceTracker(sessions, interval=settings.presence_debounce_seconds) as presence,
                Hub(
                    sessions,
                    writer,
                    presence,
                    broker,
                    unload_grace_seconds=settings.unload_grace_seconds,
                ) as hub,
                admission_reader(settings.database_url, sessions) as admission,
            ):
                app.state.services = Services(
                    settings=settings,
                    engine=engine,
                    sessions=sessions,
                    hub=hub,
                    broker=broker,
                    admission=admission,
                    redis=redis,
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

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Mount("/api", routes=api_routes()),
            WebSocketRoute("/ws/{share_token}", collaboration_socket),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        lifespan=lifespan,
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.to_response()


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred")
