"""JSON log lines, request ids and connection ids (server.logs)."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from server.logs import (
    ContextFilter,
    JsonFormatter,
    RedactingFormatter,
    RequestIds,
    configure_logging,
    connection_id,
    request_id,
)

TOKEN = "pst_" + "A1b2C3d4" * 5


class _Lines(logging.Handler):
    """Keeps formatted lines, with the context filter a configured handler has."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.addFilter(ContextFilter())
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def json_lines() -> Iterator[_Lines]:
    handler = _Lines(JsonFormatter())
    logger = logging.getLogger("test.context")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)


def test_json_lines_parse_and_carry_the_context_ids(json_lines: _Lines) -> None:
    log = logging.getLogger("test.context")
    log.info("outside")
    token = request_id.set("req-1")
    conn = connection_id.set("conn-1")
    try:
        log.warning("inside %s", "both")
    finally:
        connection_id.reset(conn)
        request_id.reset(token)
    outside, inside = (json.loads(line) for line in json_lines.lines)
    assert set(outside) == {"time", "level", "logger", "message"}
    assert outside["logger"] == "test.context" and outside["level"] == "INFO"
    assert outside["time"].endswith("Z") and "T" in outside["time"]
    assert inside["message"] == "inside both"
    assert inside["request_id"] == "req-1" and inside["connection_id"] == "conn-1"


def test_json_lines_redact_messages_and_tracebacks(json_lines: _Lines) -> None:
    log = logging.getLogger("test.context")
    try:
        raise ValueError(f"bad token {TOKEN}\nsecond line")
    except ValueError:
        log.exception("GET /ws/share?token=%s failed", TOKEN)
    (line,) = json_lines.lines
    assert "\n" not in line  # one object per line, whatever the message holds
    parsed = json.loads(line)
    assert TOKEN not in line
    assert "ValueError" in parsed["exception"] and "second line" in parsed["exception"]


def test_text_lines_end_with_the_ids() -> None:
    handler = _Lines(RedactingFormatter("%(levelname)s %(message)s%(context)s"))
    log = logging.getLogger("test.context.text")
    log.addHandler(handler)
    try:
        token = connection_id.set("c42")
        try:
            log.error("closed")
        finally:
            connection_id.reset(token)
        log.error("plain")
    finally:
        log.removeHandler(handler)
    assert handler.lines == ["ERROR closed connection_id=c42", "ERROR plain"]


async def _logging_endpoint(request: Request) -> PlainTextResponse:
    logging.getLogger("test.context").info("handling")
    return PlainTextResponse(request_id.get() or "")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = RequestIds(Starlette(routes=[Route("/", _logging_endpoint)]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        yield http


async def test_a_sane_incoming_request_id_is_kept_and_echoed(
    client: httpx.AsyncClient, json_lines: _Lines
) -> None:
    response = await client.get("/", headers={"X-Request-ID": "abc-123.DEF:9"})
    assert response.headers["x-request-id"] == "abc-123.DEF:9" == response.text
    assert json.loads(json_lines.lines[0])["request_id"] == "abc-123.DEF:9"


@pytest.mark.parametrize(
    "incoming", ["", "a" * 65, "has space", "<script>", "a\tb", f"tok={TOKEN}", "é"]
)
async def test_an_odd_incoming_request_id_is_replaced(
    client: httpx.AsyncClient, incoming: str
) -> None:
    response = await client.get("/", headers={"X-Request-ID": incoming.encode("utf-8")})
    generated = response.headers["x-request-id"]
    assert generated != incoming and len(generated) == 32 and generated == response.text


async def test_every_request_gets_its_own_id(client: httpx.AsyncClient) -> None:
    first, second = await client.get("/"), await client.get("/")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert request_id.get() is None  # nothing leaks out of the request


@pytest.fixture
def restored_root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_json_covers_uvicorn_too(
    restored_root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    stray = logging.StreamHandler(io.StringIO())
    logging.getLogger("uvicorn.access").addHandler(stray)
    configure_logging("INFO", "json")
    assert stray not in logging.getLogger("uvicorn.access").handlers
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    logging.getLogger("uvicorn.access").info('%s - "GET /ws/%s HTTP/1.1" 101', "c", TOKEN)
    logging.getLogger("server.x").info("ours")
    uvicorn_line, ours = (json.loads(line) for line in stderr.getvalue().splitlines())
    assert uvicorn_line["logger"] == "uvicorn.access" and TOKEN not in uvicorn_line["message"]
    assert ours == {**ours, "logger": "server.x", "message": "ours", "level": "INFO"}
