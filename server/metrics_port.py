"""``/metrics`` on a port of its own (``PROMPT_STUDIO_METRICS_PORT``), kept off the public one.

A minimal HTTP/1.0-style responder on the app's event loop: it reads one request head, bounded
in size and time (``PROMPT_STUDIO_METRICS_MAX_HEAD_BYTES``, ``PROMPT_STUDIO_HEAD_TIMEOUT_SECONDS``),
answers ``GET /metrics`` with the exposition text and anything else with 404,
and closes. Running on the event loop (not prometheus-client's thread server) means a scrape
reads the hub's counters on the same thread that changes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from prometheus_client import CONTENT_TYPE_LATEST

from server.metrics import AppMetrics

logger = logging.getLogger(__name__)


class MetricsPort:
    """Serves ``GET /metrics`` on ``host:port`` while entered."""

    def __init__(
        self,
        metrics: AppMetrics,
        host: str,
        port: int,
        *,
        max_head_bytes: int,
        head_timeout_seconds: float,
    ) -> None:
        """``max_head_bytes``/``head_timeout_seconds``: a request head longer or slower than
        this gets no answer (a scrape's head is a few hundred bytes, sent at once)."""
        self._metrics = metrics
        self._host = host
        self._port = port
        self._max_head_bytes = max_head_bytes
        self._head_timeout = head_timeout_seconds
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when 0 was asked for)."""
        if self._server is None:
            return self._port
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def __aenter__(self) -> MetricsPort:
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port, limit=self._max_head_bytes
        )
        logger.info("metrics on http://%s:%d/metrics", self._host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self._head_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
            # The reader's limit counts the bytes before the separator: check the whole head.
            if len(head) > self._max_head_bytes:
                return
            parts = head.split(b"\r\n", 1)[0].split(b" ")
            if len(parts) == 3 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics":
                self._respond(writer, b"200 OK", CONTENT_TYPE_LATEST, self._metrics.render())
            else:
                self._respond(writer, b"404 Not Found", "text/plain", b"not found\n")
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that sent no sane request head gets nothing
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    @staticmethod
    def _respond(
        writer: asyncio.StreamWriter, status: bytes, content_type: str, body: bytes
    ) -> None:
        writer.write(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: "
            + content_type.encode()
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
