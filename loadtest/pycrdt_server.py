"""A minimal pycrdt-websocket server (ASGI on uvicorn), as a reference for the benchmarks.

``python -m loadtest.pycrdt_server --host 127.0.0.1 --port 1234``: every websocket path is a
room (in-memory ``YRoom``; rooms are dropped when their last client leaves), served by
pycrdt-websocket's own ``ASGIServer`` on uvicorn with the same websocket implementation our
server uses (``websockets-sansio``), so the comparison is about the room logic, not the socket
library.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _log_and_continue(exception: Exception, log: logging.Logger) -> bool:
    """Log a room's exception and keep serving (the default handler re-raises)."""
    log.warning("pycrdt-websocket: %r", exception)
    return True


class App:
    """The ASGI app: runs the ``WebsocketServer`` for the lifespan, serves sockets with it."""

    def __init__(self) -> None:
        """Build the (not yet started) websocket server."""
        self.websocket_server = WebsocketServer(
            auto_clean_rooms=True, exception_handler=_log_and_continue
        )
        self.asgi = ASGIServer(self.websocket_server)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the websocket server's task group; stop it on the way out."""
        async with self.websocket_server:
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle the lifespan here, everything else with pycrdt-websocket's ASGI server."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await self.asgi(scope, receive, send)
        else:  # plain HTTP: a tiny health answer
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        async with self.running():
            await send({"type": "lifespan.startup.complete"})
            while (await receive())["type"] != "lifespan.shutdown":
                pass
        await send({"type": "lifespan.shutdown.complete"})


def main(argv: list[str] | None = None) -> None:
    """Parse ``--host``/``--port`` and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1234)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    uvicorn.run(
        App(),
        host=args.host,
        port=args.port,
        ws="websockets-sansio",
        lifespan="on",
        log_level=args.log_level,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
