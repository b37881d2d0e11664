"""A fake OpenAI-compatible HTTP server on 127.0.0.1, for tests that need a real LLM endpoint.

Real HTTP/1.1 over a real socket (a small asyncio server in a thread of its own, so it serves
sync and async tests and other processes alike), speaking what the ``openai`` SDK and our
providers use:

- ``POST /v1/chat/completions``: JSON, or SSE when ``stream`` is true (a role chunk, one chunk per
  word, a finish chunk, the usage chunk when ``stream_options.include_usage``, ``[DONE]``).
  The answer is :attr:`FakeOpenAI.reply` of the messages (default :func:`default_reply`);
  ``max_tokens`` cuts it at that many words (``finish_reason="length"``).
- ``GET /v1/models``: :attr:`FakeOpenAI.models`.
- ``POST /v1/embeddings``: :func:`fake_embedding` of each input (float or base64 encoding).

Token counts are whitespace-separated words, so tests can predict them. Faults are injected per
request with :meth:`FakeOpenAI.fail_next` (see :data:`FaultKind`); every request is recorded in
:attr:`FakeOpenAI.requests`, with how many stream chunks it got and whether the client went away.

Usage::

    with FakeOpenAI(api_key="sk-test") as fake:
        fake.fail_next("rate_limit", retry_after=2)
        client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test")
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from tests.support.fake_openai_protocol import (
    CHAT_PATH,
    EMBEDDINGS_PATH,
    MAX_REQUEST_BYTES,
    MODELS_PATH,
    Exchange,
    Fault,
    FaultKind,
    RecordedRequest,
    count_words,
    default_reply,
    fake_embedding,
    read_request,
)

DEFAULT_MODELS = ("fake-small", "fake-large")


class FakeOpenAI:
    """The fake server; start with ``with FakeOpenAI() as fake:`` (or :meth:`start`/:meth:`stop`)."""

    def __init__(
        self,
        *,
        models: Sequence[str] = DEFAULT_MODELS,
        api_key: str | None = None,
        embedding_dims: int = 32,
    ) -> None:
        self.models = list(models)
        #: When set, requests without ``Authorization: Bearer <api_key>`` get a 401.
        self.api_key = api_key
        self.embedding_dims = embedding_dims
        self.reply: Callable[[Sequence[dict[str, Any]]], str] = default_reply
        self.requests: list[RecordedRequest] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._ids = itertools.count(1)
        self.port = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, what ``AsyncOpenAI(base_url=…)`` takes."""
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_next(self, kind: FaultKind, *, times: int = 1, **params: Any) -> None:
        """Inject ``kind`` into the next ``times`` requests to ``params.get('path', CHAT_PATH)``."""
        fault = Fault(kind, **params)
        with self._lock:
            self._faults.extend([fault] * times)

    def chat_requests(self) -> list[RecordedRequest]:
        """The chat-completions requests received so far."""
        with self._lock:
            return [r for r in self.requests if r.path == CHAT_PATH]

    def start(self) -> FakeOpenAI:
        """Start serving in a background thread; returns once the port is bound."""
        self._thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        """Stop serving (open exchanges are cancelled) and join the thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and self._thread is not None:
            loop.call_soon_threadsafe(stopping.set)
            self._thread.join(10)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=MAX_REQUEST_BYTES)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            exchanges = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in exchanges:
                task.cancel()
            await asyncio.gather(*exchanges, return_exceptions=True)

    def take_fault(self, path: str) -> Fault | None:
        """The next injected fault for ``path``, removed from the queue."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.path == path:
                    del self._faults[index]
                    return fault
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await read_request(reader)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            await Exchange(self, request, reader, writer).answer()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    def next_id(self) -> int:
        """A fresh completion number."""
        return next(self._ids)


__all__ = [
    "CHAT_PATH",
    "EMBEDDINGS_PATH",
    "MODELS_PATH",
    "FakeOpenAI",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "count_words",
    "default_reply",
    "fake_embedding",
]
