"""The fake OpenAI server's wire side: faults, recorded requests, and one HTTP exchange.

See :mod:`tests.support.fake_openai` for the server and its public API.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

FaultKind = Literal[
    "rate_limit",  # 429 with Retry-After: <retry_after>
    "server_error",  # 500
    "unauthorized",  # 401 invalid_api_key
    "context_length",  # 400 context_length_exceeded
    "malformed_json",  # 200 whose body (or, streaming, chunk number <after_chunks>) is not JSON
    "slow_first_token",  # wait <delay> seconds before the first byte of the answer
    "cut_stream",  # streaming: close the connection after <after_chunks> content chunks
    "stall",  # streaming: after <after_chunks> chunks, hold until the client disconnects
]

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MODELS_PATH = "/v1/models"
MAX_REQUEST_BYTES = 8 * 1024 * 1024
#: How long a stalled stream waits for the client to go away before ending anyway.
STALL_LIMIT_SECONDS = 30.0
_WORD = re.compile(r"\S+\s*")


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure."""

    kind: FaultKind
    retry_after: float = 1.0
    delay: float = 1.0
    after_chunks: int = 2
    #: The request path it applies to.
    path: str = CHAT_PATH


@dataclass
class RecordedRequest:
    """A request the fake received, and what became of it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    fault: Fault | None = None
    chunks_sent: int = 0
    completed: bool = False
    #: The client closed the connection before the answer was complete.
    disconnected: bool = False


def default_reply(messages: Sequence[dict[str, Any]]) -> str:
    """``Fake answer to: <last user message>``."""
    users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
    return f"Fake answer to: {users[-1] if users else ''}"


def count_words(text: str) -> int:
    """The fake's token count: whitespace-separated words."""
    return len(text.split())


def fake_embedding(text: str, dims: int = 32) -> list[float]:
    """A deterministic unit vector: hashed bag of lowercase words (shared words → similar)."""
    vector = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode("utf-8")).digest()
        index = int.from_bytes(digest[:4], "big") % dims
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [value / norm for value in vector]


class FakeState(Protocol):
    """What an exchange needs of the server (:class:`tests.support.fake_openai.FakeOpenAI`)."""

    models: list[str]
    api_key: str | None
    embedding_dims: int
    reply: Callable[[Sequence[dict[str, Any]]], str]

    def take_fault(self, path: str) -> Fault | None:
        """The next injected fault for ``path``, removed from the queue."""
        ...

    def next_id(self) -> int:
        """A fresh completion number."""
        ...


class Exchange:
    """One request and its answer."""

    def __init__(
        self,
        fake: FakeState,
        request: RecordedRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.fake = fake
        self.request = request
        self.reader = reader
        self.writer = writer

    async def answer(self) -> None:
        fake, request = self.fake, self.request
        expected = None if fake.api_key is None else f"Bearer {fake.api_key}"
        if expected is not None and request.headers.get("authorization") != expected:
            await self.error(401, "Incorrect API key provided", "invalid_api_key")
            return
        fault = fake.take_fault(request.path)
        request.fault = fault
        if fault is not None and await self.status_fault(fault):
            return
        if fault is not None and fault.kind == "slow_first_token":
            await asyncio.sleep(fault.delay)
        route = (request.method, request.path)
        if route == ("GET", MODELS_PATH):
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in fake.models
            ]
            await self.json(200, {"object": "list", "data": data})
        elif route == ("POST", EMBEDDINGS_PATH):
            await self.embeddings(fault)
        elif route == ("POST", CHAT_PATH):
            await self.chat(fault)
        else:
            await self.error(404, f"no route {request.method} {request.path}", "not_found")

    async def status_fault(self, fault: Fault) -> bool:
        if fault.kind == "rate_limit":
            headers = {"Retry-After": _number(fault.retry_after)}
            await self.error(429, "Rate limit reached for requests", "rate_limit_exceeded", headers)
        elif fault.kind == "server_error":
            await self.error(500, "The server had an error while processing your request", None)
        elif fault.kind == "unauthorized":
            await self.error(401, "Incorrect API key provided", "invalid_api_key")
        elif fault.kind == "context_length":
            message = (
                "This model's maximum context length is 8192 tokens. However, your messages "
                "resulted in 9000 tokens. Please reduce the length of the messages."
            )
            await self.error(400, message, "context_length_exceeded")
        elif fault.kind == "malformed_json" and not self.streaming:
            await self.raw(200, b'{"id": "chatcmpl-1", "choices": [', "application/json")
        else:
            return False
        return True

    @property
    def streaming(self) -> bool:
        body = self.request.body
        return isinstance(body, dict) and body.get("stream") is True

    async def chat(self, fault: Fault | None) -> None:
        body = self.request.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            await self.error(400, "messages is required", "invalid_request_error")
            return
        model = str(body.get("model", ""))
        if model not in self.fake.models:
            await self.error(404, f"The model `{model}` does not exist", "model_not_found")
            return
        messages: list[dict[str, Any]] = body["messages"]
        pieces = _WORD.findall(self.fake.reply(messages))
        finish = "stop"
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and len(pieces) > max_tokens:
            pieces, finish = pieces[:max_tokens], "length"
        text = "".join(pieces)
        prompt = sum(count_words(str(m.get("content", ""))) for m in messages)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": count_words(text),
            "total_tokens": prompt + count_words(text),
        }
        ident = f"chatcmpl-{self.fake.next_id()}"
        if not self.streaming:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
            answer = _envelope(ident, "chat.completion", model, [choice])
            await self.json(200, {**answer, "usage": usage})
            self.request.completed = True
            return
        options = body.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        await self.stream(ident, model, pieces, finish, usage if with_usage else None, fault)

    async def stream(
        self,
        ident: str,
        model: str,
        pieces: list[str],
        finish: str,
        usage: dict[str, int] | None,
        fault: Fault | None,
    ) -> None:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        self.writer.write(head.encode())
        first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        await self.event(_envelope(ident, "chat.completion.chunk", model, [first]))
        for number, piece in enumerate(pieces):
            if fault is not None and number == fault.after_chunks:
                if fault.kind == "cut_stream":
                    self.writer.transport.abort()
                    return
                if fault.kind == "malformed_json":
                    await self.send_chunk(b"data: {broken json\n\n")
                    break
                if fault.kind == "stall":
                    await self.hold_until_disconnect()
                    return
            choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
            await self.event(_envelope(ident, "chat.completion.chunk", model, [choice]))
            self.request.chunks_sent += 1
        else:
            last = {"index": 0, "delta": {}, "finish_reason": finish}
            await self.event(_envelope(ident, "chat.completion.chunk", model, [last]))
            if usage is not None:
                await self.event(
                    {**_envelope(ident, "chat.completion.chunk", model, []), "usage": usage}
                )
        await self.send_chunk(b"data: [DONE]\n\n")
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()
        self.request.completed = True

    async def hold_until_disconnect(self) -> None:
        try:
            async with asyncio.timeout(STALL_LIMIT_SECONDS):
                while await self.reader.read(1024):
                    pass
        except TimeoutError:
            return
        self.request.disconnected = True

    async def embeddings(self, fault: Fault | None) -> None:
        body = self.request.body
        raw = body.get("input") if isinstance(body, dict) else None
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            await self.error(400, "input must be a string or a list of strings", "invalid_input")
            return
        dims = self.fake.embedding_dims
        as_base64 = isinstance(body, dict) and body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(inputs):
            vector = fake_embedding(text, dims)
            encoded: Any = vector
            if as_base64:
                encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        words = sum(count_words(text) for text in inputs)
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        usage = {"prompt_tokens": words, "total_tokens": words}
        await self.json(200, {"object": "list", "data": data, "model": model, "usage": usage})
        self.request.completed = True

    async def event(self, payload: dict[str, Any]) -> None:
        await self.send_chunk(f"data: {json.dumps(payload)}\n\n".encode())

    async def send_chunk(self, data: bytes) -> None:
        self.writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await self.writer.drain()

    async def error(
        self, status: int, message: str, code: str | None, headers: dict[str, str] | None = None
    ) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        payload = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        await self.json(status, payload, headers)

    async def json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        await self.raw(status, json.dumps(payload).encode(), "application/json", headers)

    async def raw(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
_REASONS |= {429: "Too Many Requests", 500: "Internal Server Error"}


async def read_request(reader: asyncio.StreamReader) -> RecordedRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    raw = await reader.readexactly(length) if length else b""
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
    path = target.split("?", 1)[0]
    return RecordedRequest(method=method, path=path, headers=headers, body=body)


def _envelope(ident: str, kind: str, model: str, choices: list[Any]) -> dict[str, Any]:
    return {
        "id": ident,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
