"""Guards on the bets the server makes on its dependencies' internals (see "Upgrading dependencies").

Each ``check_*`` function states one assumption about an installed dependency and raises
:class:`GuardError` — naming the dependency, its installed version, what no longer holds and
where to look — when an upgrade breaks it. Each is run once as is (``test_*``), and the
``test_a_broken_*`` tests break the dependency with ``monkeypatch`` to show that the guard
fails loudly. No network: the uvicorn and h11 protocols are driven through a fake transport
with websockets' sans-I/O client on the other end, and redis-py talks to a scripted RESP server
on a Unix socket.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import weakref
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn, cast

import h11
import pycrdt
import pytest
import sqlalchemy as sa
import uvicorn
from pycrdt import Doc, Text
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.compiler import SQLCompiler
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from crdt.document import PromptDocument
from crdt.pycrdt_raw import is_rust_panic, observe_text_raw, observe_transactions_raw
from server.http_guard import GuardedH11Protocol, guarded_h11_protocol
from server.hub.wire import DIRECT_EXTENSION, WireMessage
from server.ws_protocol import DirectSocket, DirectWebSocketProtocol, direct_websocket_protocol
from storage.sqlite_thread import PreparedStatement

# How long any one step of a driven protocol may take (the loop is otherwise idle).
STEP_SECONDS = 10.0


class GuardError(AssertionError):
    """An assumption about a dependency's internals no longer holds."""


def broken(dist: str, assumption: str, check: str) -> NoReturn:
    """Fail with the message an engineer upgrading ``dist`` needs."""
    raise GuardError(
        f"{dist} {version(dist)}: no longer true: {assumption}. Check: {check}. "
        f"(The supported range of {dist} is pinned in pyproject.toml; see the README's "
        f"'Upgrading dependencies' checklist.)"
    )


def require(condition: bool, dist: str, assumption: str, check: str) -> None:
    """:func:`broken` unless ``condition``."""
    if not condition:
        broken(dist, assumption, check)


def require_attributes(obj: object, names: tuple[str, ...], dist: str, where: str) -> None:
    """Every one of ``names`` is an attribute of ``obj`` (an instance or a class of ``dist``)."""
    missing = [name for name in names if not hasattr(obj, name)]
    require(
        not missing,
        dist,
        f"{where} has the attributes {', '.join(names)}",
        f"{where} lost {', '.join(missing)}; adapt the module that relies on them",
    )


def require_parameters(
    fn: Callable[..., Any], names: tuple[str, ...], dist: str, where: str
) -> None:
    """``fn`` takes every one of ``names`` as a keyword argument."""
    parameters = inspect.signature(fn).parameters
    missing = [name for name in names if name not in parameters]
    require(
        not missing,
        dist,
        f"{where} takes the keyword arguments {', '.join(names)}",
        f"{where}{inspect.signature(fn)} lacks {', '.join(missing)}",
    )


# --- a fake asyncio transport ---------------------------------------------------------------


class FakeTransport:
    """What uvicorn's protocols use of an ``asyncio.Transport``, recording every write."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        self.protocol: object = None
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.written += data
        self.wrote.set()

    def take(self) -> bytes:
        data = bytes(self.written)
        self.written.clear()
        self.wrote.clear()
        return data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_protocol(self, protocol: object) -> None:
        self.protocol = protocol

    def get_extra_info(self, name: str, default: object = None) -> object:
        addresses = {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}
        return addresses.get(name, default)


def as_transport(transport: FakeTransport) -> asyncio.Transport:
    return cast(asyncio.Transport, transport)


async def wait_for(event: asyncio.Event, what: str) -> None:
    try:
        async with asyncio.timeout(STEP_SECONDS):
            await event.wait()
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def uvicorn_config(app: ASGIApp, **kwargs: Any) -> uvicorn.Config:
    config = uvicorn.Config(app, lifespan="off", log_config=None, **kwargs)
    config.load()
    return config


# --- uvicorn: the sans-I/O websocket protocol under server/ws_protocol.py --------------------

WS_INSTANCE_ATTRIBUTES = (
    "conn",
    "transport",
    "writable",
    "close_sent",
    "disconnected",
    "frames",
    "curr_msg_data_type",
    "queue",
    "loop",
    "handshake_complete",
)
WS_METHODS = ("run_asgi", "send", "send_receive_event_to_app", "connection_lost", "data_received")


async def _idle_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()


def check_uvicorn_ws_attributes() -> None:
    """uvicorn's ``WebSocketsSansIOProtocol`` keeps the state server/ws_protocol.py reads and
    writes, under the same names and types, and defines none of the names it adds."""
    where = "uvicorn.protocols.websockets.websockets_sansio_impl.WebSocketsSansIOProtocol"
    require_parameters(
        WebSocketsSansIOProtocol.__init__, ("config", "server_state", "app_state"), "uvicorn", where
    )
    for name in ("direct", "drop_grace_seconds"):
        require(
            not hasattr(WebSocketsSansIOProtocol, name),
            "uvicorn",
            f"{where} defines no attribute {name!r} (server/ws_protocol.py adds it)",
            f"rename {name!r} in server/ws_protocol.py",
        )
    protocol = WebSocketsSansIOProtocol(
        config=uvicorn_config(_idle_app), server_state=ServerState(), app_state={}
    )
    require_attributes(protocol, WS_INSTANCE_ATTRIBUTES, "uvicorn", f"a {where}")
    for name in ("direct", "drop_grace_seconds"):
        require(
            name not in vars(protocol),
            "uvicorn",
            f"a {where} sets no attribute {name!r}",
            f"rename {name!r} in server/ws_protocol.py",
        )
    require_attributes(WebSocketsSansIOProtocol, WS_METHODS, "uvicorn", where)
    for name in ("run_asgi", "send"):
        require(
            inspect.iscoroutinefunction(getattr(WebSocketsSansIOProtocol, name)),
            "uvicorn",
            f"{where}.{name} is a coroutine function",
            "DirectWebSocketProtocol overrides it with one",
        )
    require(
        isinstance(protocol.writable, asyncio.Event)
        and isinstance(protocol.queue, asyncio.Queue)
        and isinstance(protocol.frames, list)
        and protocol.close_sent is False
        and protocol.disconnected is False,
        "uvicorn",
        f"{where}: writable is an asyncio.Event, queue an asyncio.Queue, frames a list, "
        "close_sent and disconnected False at first",
        "DirectSocket.write/drop and send_receive_event_to_app in server/ws_protocol.py",
    )


async def test_uvicorn_websocket_protocol_has_the_attributes_ws_protocol_uses() -> None:
    # async: uvicorn's protocols take the running loop
    check_uvicorn_ws_attributes()


class _WsApp:
    """An ASGI app that accepts, records the direct socket and waits for the disconnect."""

    def __init__(self) -> None:
        self.direct: DirectSocket | None = None
        self.accepted = asyncio.Event()
        self.ended: dict[str, Any] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        self.direct = scope.get("extensions", {}).get(DIRECT_EXTENSION)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        self.accepted.set()
        self.ended = await receive()


def _client_frames(client: ClientProtocol, data: bytes) -> list[Frame]:
    client.receive_data(data)
    return [event for event in client.events_received() if isinstance(event, Frame)]


async def check_uvicorn_ws_direct_path(*, compression: bool) -> None:
    """A handshake and messages both ways through DirectWebSocketProtocol, as uvicorn drives
    it: the direct socket is in the scope, a shared frame (or, compressed, the connection's
    own encoding) reaches the client, frames reach the receiver callback synchronously, the
    handshake's request/response are let go, and a drop sends the close frame."""
    dist = "uvicorn"
    check = (
        "server/ws_protocol.py against uvicorn/protocols/websockets/websockets_sansio_impl.py "
        "(handle_connect, send, send_receive_event_to_app) and websockets' ServerProtocol"
    )
    app = _WsApp()
    config = uvicorn_config(
        app,
        ws=direct_websocket_protocol(0.5),
        ws_per_message_deflate=compression,
        ws_ping_interval=None,
    )
    state = ServerState()
    transport = FakeTransport()
    try:
        protocol = config.ws_protocol_class(config=config, server_state=state, app_state={})  # type: ignore[misc, call-arg]
        assert isinstance(protocol, DirectWebSocketProtocol)
        protocol.connection_made(as_transport(transport))
        extensions = [ClientPerMessageDeflateFactory()] if compression else []
        client = ClientProtocol(parse_uri("ws://127.0.0.1:8000/ws/x"), extensions=extensions)
        client.send_request(client.connect())
        protocol.data_received(b"".join(client.data_to_send()))
        await wait_for(app.accepted, "the ASGI accept")
        client.receive_data(transport.take())
        responses = [event for event in client.events_received() if isinstance(event, Response)]
        require(
            client.state is State.OPEN and len(responses) == 1,
            dist,
            "a websocket handshake through DirectWebSocketProtocol completes",
            check,
        )
        direct = app.direct
        require(
            direct is protocol.direct,
            dist,
            "run_asgi's scope reaches the app with the extensions DirectWebSocketProtocol set",
            check,
        )
        assert direct is not None
        require(
            "request" not in vars(protocol) and "response" not in vars(protocol),
            dist,
            "the handshake's request and response are instance attributes, unused once "
            "handshake_complete is set (DirectWebSocketProtocol.send lets them go)",
            check,
        )
        require(
            bool(protocol.conn.extensions) == compression,
            dist,
            "conn.extensions is non-empty exactly when permessage-deflate was negotiated",
            check,
        )

        # Out: the direct write, as the client decodes it.
        for data in (b"\x00\x01update", "text \u00e9"):
            require(direct.write(WireMessage(data)), dist, "DirectSocket.write writes", check)
            frames = _client_frames(client, transport.take())
            payload = frames[0].data if frames else b""
            expected = data if isinstance(data, bytes) else data.encode()
            require(
                len(frames) == 1 and bytes(payload) == expected,
                dist,
                "a direct write reaches the client as one complete websocket message",
                check,
            )
        protocol.pause_writing()
        require(
            not direct.write(WireMessage(b"x")),
            dist,
            "pause_writing() clears the writable event DirectSocket.write consults",
            check,
        )
        protocol.resume_writing()

        # In: frames parsed by uvicorn reach the receiver synchronously, in order.
        received: list[bytes | str] = []
        direct.set_receiver(received.append)
        client.send_binary(b"\x00\x00")
        client.send_text("h\u00e9".encode())
        client.send_text(b"par", fin=False)
        client.send_continuation(b"ts", fin=True)
        protocol.data_received(b"".join(client.data_to_send()))
        require(
            received == [b"\x00\x00", "h\u00e9", "parts"],
            dist,
            "send_receive_event_to_app is called once per complete message with frames and "
            "curr_msg_data_type set",
            f"{check}; got {received!r}",
        )

        # A drop (here: invalid UTF-8) closes with the code, behind what was buffered.
        client.send_text(b"\xff")
        protocol.data_received(b"".join(client.data_to_send()))
        frames = _client_frames(client, transport.take())
        closes = [frame for frame in frames if frame.opcode is Opcode.CLOSE]
        require(
            len(closes) == 1 and closes[0].data[:2] == (1007).to_bytes(2, "big"),
            dist,
            "DirectSocket.drop sends the close frame through conn.send_close/data_to_send",
            check,
        )
        require(
            protocol.close_sent and transport.closed,
            dist,
            "close_sent marks the close and transport.close() ends the connection",
            check,
        )
        tasks = set(state.tasks)
        done, _ = await asyncio.wait(tasks, timeout=STEP_SECONDS) if tasks else (set(), set())
        require(
            bool(tasks) and done == tasks and app.ended is not None,
            dist,
            "the queue's websocket.disconnect ends the app's receive() after a drop",
            check,
        )
        assert app.ended is not None
        require(
            app.ended["type"] == "websocket.disconnect" and app.ended["code"] == 1007,
            dist,
            "the app sees the drop's code in websocket.disconnect",
            check,
        )
        protocol.connection_lost(None)
        require(protocol.disconnected, dist, "connection_lost sets disconnected", check)
    except GuardError:
        raise
    except Exception as exc:
        broken(dist, "DirectWebSocketProtocol runs on uvicorn's protocol", f"{check}; {exc!r}")
    finally:
        for task in state.tasks:
            task.cancel()


@pytest.mark.parametrize("compression", [False, True], ids=["shared-frame", "deflate"])
async def test_uvicorn_websocket_protocol_runs_the_direct_path(compression: bool) -> None:
    await check_uvicorn_ws_direct_path(compression=compression)


# --- uvicorn + h11: the HTTP protocol under server/http_guard.py ----------------------------


class _HttpApp:
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def check_uvicorn_takes_protocol_classes() -> None:
    """uvicorn.Config takes protocol classes (not only names) for ``http`` and ``ws``, and
    uvicorn's h11 protocol keeps the state http_guard.py reads, none of the names it adds."""
    dist = "uvicorn"
    guarded = guarded_h11_protocol(10.0, 10)
    direct = direct_websocket_protocol(1.0)
    config = uvicorn_config(_HttpApp(), http=guarded, ws=direct)
    require(
        config.http_protocol_class is guarded and config.ws_protocol_class is direct,
        dist,
        "Config(http=<class>, ws=<class>) serves with those classes",
        "uvicorn/config.py Config.load; server/cli.py _serve passes classes",
    )
    where = "uvicorn.protocols.http.h11_impl.H11Protocol"
    require_parameters(H11Protocol.__init__, ("config", "server_state", "app_state"), dist, where)
    ours = ("guard", "abandon_head", "_head_timer", "_head_started", "_await_head")
    ours += ("_head_timed_out", "_head_complete")
    protocol = H11Protocol(config=config, server_state=ServerState(), app_state={})
    clashes = [name for name in ours if hasattr(H11Protocol, name) or name in vars(protocol)]
    require(
        not clashes,
        dist,
        f"{where} defines none of the names GuardedH11Protocol adds",
        f"rename {', '.join(clashes)} in server/http_guard.py",
    )
    require_attributes(protocol, ("conn", "transport", "loop", "client"), dist, f"a {where}")
    require(
        isinstance(protocol.conn, h11.Connection),
        "h11",
        f"{where}.conn is an h11.Connection",
        "GuardedH11Protocol.data_received reads conn.their_state",
    )


async def test_uvicorn_takes_our_protocol_classes() -> None:
    check_uvicorn_takes_protocol_classes()


async def check_h11_head_states() -> None:
    """h11's ``their_state`` is IDLE while a request head is incomplete and leaves IDLE once
    it is parsed, as uvicorn feeds it; that is how GuardedH11Protocol sees a head complete.
    And an upgrade hands the transport to the ws class with config/server_state/app_state."""
    dist = "h11"
    check = "GuardedH11Protocol.data_received in server/http_guard.py (h11.Connection.their_state)"
    config = uvicorn_config(
        _HttpApp(), http=guarded_h11_protocol(10.0, 10), ws=direct_websocket_protocol(1.0)
    )
    state = ServerState()
    try:
        for request, upgraded in (
            (b"GET / HTTP/1.1\r\nHost: x\r\n", False),
            (
                b"GET /ws/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
                True,
            ),
        ):
            transport = FakeTransport()
            protocol = config.http_protocol_class(config=config, server_state=state, app_state={})  # type: ignore[call-arg]
            assert isinstance(protocol, GuardedH11Protocol)
            protocol.connection_made(as_transport(transport))
            protocol.data_received(request)
            require(
                protocol.conn.their_state is h11.IDLE and len(protocol.guard) == 1,
                dist,
                "their_state stays IDLE while the request head is incomplete",
                check,
            )
            protocol.data_received(b"\r\n")
            require(
                len(protocol.guard) == 0,
                dist,
                "their_state leaves IDLE once the request head is complete",
                check,
            )
            if upgraded:
                require(
                    isinstance(transport.protocol, DirectWebSocketProtocol),
                    "uvicorn",
                    "an upgrade request makes H11Protocol build ws_protocol_class(config=, "
                    "server_state=, app_state=) and set it as the transport's protocol",
                    "uvicorn/protocols/http/h11_impl.py handle_websocket_upgrade",
                )
            else:
                await wait_for(transport.wrote, "the HTTP response")
                require(
                    transport.take().startswith(b"HTTP/1.1 204"),
                    "uvicorn",
                    "a complete head is served as before",
                    check,
                )
            protocol.connection_lost(None)
    except GuardError:
        raise
    except Exception as exc:
        broken(dist, "uvicorn's h11 protocol runs GuardedH11Protocol", f"{check}; {exc!r}")
    finally:
        tasks = set(state.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STEP_SECONDS)


async def test_h11_reports_a_complete_request_head() -> None:
    await check_h11_head_states()


# --- pycrdt: the raw observers under crdt/document.py (crdt/pycrdt_raw.py) ------------------


def check_pycrdt_raw_observers() -> None:
    """The Rust ``Doc`` and ``Text`` observers call back with a transaction's update and the
    text delta (UTF-8 units), and unsubscribe when their subscription is dropped."""
    dist = "pycrdt"
    check = "crdt/pycrdt_raw.py (Doc._doc.observe, Text.integrated.observe, event.update/delta)"
    try:
        doc: Doc[Text] = Doc(client_id=7)
        text = doc.get("content", type=Text)
        updates: list[Any] = []
        deltas: list[Any] = []
        subscriptions = [
            observe_transactions_raw(doc, lambda event: updates.append(event.update)),
            observe_text_raw(text, lambda event: deltas.append(event.delta)),
        ]
        text.insert(0, "h\u00e9llo")
        with doc.transaction():
            del text[1:3]  # "é": two UTF-8 bytes
            text.insert(1, "ab")
        replica: Doc[Text] = Doc()
        replica_text = replica.get("content", type=Text)
        for update in updates:
            replica.apply_update(update)
        require(
            len(updates) == 2
            and all(isinstance(update, bytes) for update in updates)
            and str(replica_text) == "habllo",
            dist,
            "the raw Doc observer gets one TransactionEvent per transaction whose update (bytes) "
            "reproduces it",
            check,
        )
        require(
            deltas
            == [[{"insert": "h\u00e9llo"}], [{"retain": 1}, {"delete": 2}, {"insert": "ab"}]],
            dist,
            "the raw Text observer's event.delta is a list of insert/delete/retain dicts counted "
            "in UTF-8 bytes",
            f"crdt/delta.py apply_delta and changes_to_ops; got {deltas!r}",
        )
        for subscription in subscriptions:
            subscription.drop()
        text.insert(0, "x")
        require(
            len(updates) == 2 and len(deltas) == 2,
            dist,
            "Subscription.drop() ends a raw subscription",
            check,
        )
        dropped: list[Any] = []
        observe_text_raw(text, dropped.append)  # the subscription is not kept
        gc.collect()
        text.insert(0, "y")
        require(
            not dropped,
            dist,
            "a raw subscription whose handle is dropped unsubscribes",
            f"{check}; PromptDocument keeps its handles in _subscriptions",
        )
    except GuardError:
        raise
    except Exception as exc:
        broken(
            dist, "the raw observers exist as crdt/pycrdt_raw.py calls them", f"{check}; {exc!r}"
        )


def test_pycrdt_raw_observers_report_updates_and_deltas() -> None:
    check_pycrdt_raw_observers()


def check_pycrdt_document_is_freed() -> None:
    """A PromptDocument's raw subscriptions do not keep its pycrdt Doc alive (pycrdt's own
    ``Doc.observe`` would): a room's document is freed when the room unloads."""
    document = PromptDocument(client_id=1)
    document.apply_update(PromptDocument.from_text("abc", client_id=2).full_state())
    ref = weakref.ref(document._doc)
    del document
    gc.collect()
    require(
        ref() is None,
        "pycrdt",
        "a Doc with raw observers is freed once nothing refers to it",
        "crdt/pycrdt_raw.py and PromptDocument.__init__ (memory after rooms unload)",
    )


def test_pycrdt_document_is_freed_with_its_observers() -> None:
    check_pycrdt_document_is_freed()


def check_pycrdt_text_indexing() -> None:
    """pycrdt indexes a Text in UTF-8 bytes plus one unit per embed, ``str()`` leaves embeds
    out, and ``diff()`` lists (chunk, attributes) with a non-str chunk per embed."""
    dist = "pycrdt"
    doc: Doc[Text] = Doc()
    text = doc.get("content", type=Text)
    text.insert(0, "a\u00e9\U0001f600")  # 1 + 2 + 4 UTF-8 bytes
    require(
        len(text) == 7,
        dist,
        "len(Text) counts UTF-8 bytes",
        "crdt/delta.py and PromptDocument's _plain fast path",
    )
    text.insert_embed(1, {"image": "x"})
    chunks = [chunk for chunk, _ in text.diff()]
    require(
        len(text) == 8
        and str(text) == "a\u00e9\U0001f600"
        and [isinstance(chunk, str) for chunk in chunks] == [True, False, True],
        dist,
        "an embed is one index unit, absent from str(Text), a non-str chunk in Text.diff()",
        f"PromptDocument._pieces and crdt/delta.py; diff() gave {text.diff()!r}",
    )


def test_pycrdt_counts_text_in_utf8_bytes_and_embeds() -> None:
    check_pycrdt_text_indexing()


def check_pycrdt_panics_are_base_exceptions() -> None:
    """A panic in pycrdt's Rust code surfaces as a BaseException named PanicException, which
    PromptDocument turns into an UpdateError (``except Exception`` would miss it)."""
    doc: Doc[Text] = Doc()
    text = doc.get("content", type=Text)
    text.insert(0, "abc")
    try:
        del text[1:10]  # past the end: yrs panics
    except BaseException as exc:
        require(
            is_rust_panic(exc) and not isinstance(exc, Exception),
            "pycrdt",
            "a Rust panic is a BaseException (not an Exception) named PanicException",
            f"crdt/pycrdt_raw.py is_rust_panic and PromptDocument._apply_raw; got {exc!r}",
        )
        return
    broken(
        "pycrdt",
        "deleting past the end of a Text panics (the probe for PanicException)",
        "find another input that panics, or drop is_rust_panic if pycrdt no longer panics",
    )


def test_pycrdt_panics_are_base_exceptions() -> None:
    check_pycrdt_panics_are_base_exceptions()


# --- redis-py: the connection-level API under server/hub/redis_subscriber.py ----------------


def check_redis_connection_api() -> None:
    """The connection-level calls RedisSubscriber makes exist with the arguments it passes."""
    dist = "redis"
    where = "redis.asyncio.connection.AbstractConnection"
    require_parameters(
        AbstractConnection.read_response,
        ("timeout", "disconnect_on_error", "push_request"),
        dist,
        f"{where}.read_response",
    )
    require_parameters(AbstractConnection.disconnect, ("nowait",), dist, f"{where}.disconnect")
    require(
        isinstance(inspect.getattr_static(AbstractConnection, "is_connected"), property),
        dist,
        f"{where}.is_connected is a property",
        "RedisSubscriber checks it before every write and read",
    )
    get_connection = inspect.signature(ConnectionPool.get_connection)
    required = [
        name
        for name, parameter in get_connection.parameters.items()
        if name != "self"
        and parameter.default is inspect.Parameter.empty
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
    require(
        not required,
        dist,
        "ConnectionPool.get_connection() takes no required argument",
        f"RedisSubscriber._run calls it bare; it is get_connection{get_connection}",
    )
    for name in ("get_connection", "release", "aclose"):
        require(
            inspect.iscoroutinefunction(getattr(ConnectionPool, name)),
            dist,
            f"ConnectionPool.{name} is a coroutine function",
            "RedisSubscriber awaits it",
        )
    for name in ("send_command", "read_response", "disconnect"):
        require(
            inspect.iscoroutinefunction(getattr(AbstractConnection, name)),
            dist,
            f"{where}.{name} is a coroutine function",
            "RedisSubscriber awaits it",
        )


def test_redis_connection_api_has_the_calls_the_subscriber_makes() -> None:
    check_redis_connection_api()


def _resp(value: bytes | int | list[Any], push: bool) -> bytes:
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    head = b">" if push else b"*"
    return head + b"%d\r\n" % len(value) + b"".join(_resp(item, push) for item in value)


class FakeRedis:
    """A scripted Redis on a Unix socket: answers the connect handshake, SUBSCRIBE and PING
    like Redis (RESP3 after ``HELLO 3``), and lets the test write raw bytes."""

    def __init__(self) -> None:
        self.writer: asyncio.StreamWriter | None = None
        self.resp3 = False
        self.commands: list[list[bytes]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                assert line.startswith(b"*"), line
                args = []
                for _ in range(int(line[1:])):
                    size = int((await reader.readline())[1:])
                    args.append((await reader.readexactly(size + 2))[:-2])
                self.commands.append(args)
                writer.write(self.reply(args))
                await writer.drain()
        finally:
            writer.close()

    def reply(self, args: list[bytes]) -> bytes:
        name = args[0].upper()
        if name == b"HELLO":
            self.resp3 = args[1:2] == [b"3"]
            return b"%1\r\n$5\r\nproto\r\n:3\r\n" if self.resp3 else b"-ERR unknown\r\n"
        if name == b"SUBSCRIBE":
            return b"".join(
                _resp([b"subscribe", channel, i + 1], self.resp3)
                for i, channel in enumerate(args[1:])
            )
        if name == b"PING":
            return b"+PONG\r\n" if self.resp3 else _resp([b"pong", b""], False)
        return b"+OK\r\n"  # CLIENT SETNAME / SETINFO, SELECT


@pytest.fixture
async def fake_redis(tmp_path: Path) -> Any:
    server = FakeRedis()
    path = tmp_path / "redis.sock"
    listener = await asyncio.start_unix_server(server.handle, path=str(path))
    try:
        yield server, f"unix://{path}"
    finally:
        listener.close()
        if server.writer is not None:
            server.writer.close()
        await listener.wait_closed()


async def check_redis_connection_behaviour(server: FakeRedis, url: str) -> None:
    """RedisSubscriber's use of one pooled connection: commands sent with check_health=False,
    pushes returned by read_response(push_request=True), a read with a timeout returning None
    (not raising, not disconnecting), and a reply cut by that deadline resumed by the next."""
    dist = "redis"
    check = "server/hub/redis_subscriber.py (_send_locked, _read, _handle, _release)"
    pool = ConnectionPool.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        client_name="guard:sub",
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        health_check_interval=0,
        decode_responses=False,
    )
    try:
        async with asyncio.timeout(STEP_SECONDS):
            conn = await pool.get_connection()
            require(
                conn.is_connected, dist, "get_connection() returns a connected connection", check
            )

            async def read(seconds: float) -> Any:
                return await conn.read_response(
                    timeout=seconds, disconnect_on_error=False, push_request=True
                )

            await conn.send_command("SUBSCRIBE", b"ch", check_health=False)
            confirm = await read(2.0)
            require(
                confirm == [b"subscribe", b"ch", 1],
                dist,
                "read_response(push_request=True) returns a SUBSCRIBE confirmation as "
                "[b'subscribe', channel, count]",
                f"{check}; got {confirm!r}",
            )
            silent = await read(0.05)
            require(
                silent is None and conn.is_connected,
                dist,
                "read_response(timeout=t) returns None when nothing arrives in t, connection "
                "kept (redis-py plans to change timeout=None, never passed here)",
                f"{check}; got {silent!r}",
            )
            message = _resp([b"message", b"ch", b"payload"], server.resp3)
            assert server.writer is not None
            server.writer.write(message[:17])
            await server.writer.drain()
            partial = await read(0.2)
            server.writer.write(message[17:])
            await server.writer.drain()
            resumed = await read(2.0)
            require(
                partial is None and resumed == [b"message", b"ch", b"payload"],
                dist,
                "a reply cut short by read_response's deadline is completed by the next read",
                f"{check}; got {partial!r} then {resumed!r}",
            )
            await conn.send_command("PING", check_health=False)
            pong = await read(2.0)
            require(
                pong in (b"PONG", [b"pong", b""]),
                dist,
                "PING on a subscribed connection answers PONG (or [b'pong', b''])",
                f"RedisSubscriber._handle ignores it; got {pong!r}",
            )
            await conn.disconnect(nowait=True)
            require(not conn.is_connected, dist, "disconnect(nowait=True) disconnects", check)
            await pool.release(conn)
    except GuardError:
        raise
    except Exception as exc:
        broken(
            dist, "the connection-level API behaves as RedisSubscriber uses it", f"{check}; {exc!r}"
        )
    finally:
        await pool.aclose()
    require(
        [b"SUBSCRIBE", b"ch"] in server.commands and [b"PING"] in server.commands,
        dist,
        "send_command(*args, check_health=False) sends exactly args",
        f"{check}; the server saw {server.commands!r}",
    )


async def test_redis_connection_behaves_as_the_subscriber_expects(
    fake_redis: tuple[FakeRedis, str],
) -> None:
    await check_redis_connection_behaviour(*fake_redis)


# --- SQLAlchemy: the compiled statement under storage/sqlite_thread.py ----------------------


def check_sqlalchemy_positional_compile() -> None:
    """SQLAlchemy's SQLite compilation exposes the parameter order (``positiontup``), defaults
    (``params``) and binds (``binds``) that PreparedStatement replays through sqlite3."""
    import sqlite3

    dist = "sqlalchemy"
    check = "storage/sqlite_thread.py PreparedStatement (compiled.positiontup/params/binds)"
    metadata = sa.MetaData()
    table = sa.Table("t", metadata, sa.Column("a", sa.Integer), sa.Column("b", sa.String))
    statement = sa.select(table.c.b).where(table.c.a == sa.bindparam("a_value"), table.c.b != "z")
    compiled = statement.compile(dialect=sqlite.dialect())
    require(isinstance(compiled, SQLCompiler), dist, "compile() gives an SQLCompiler", check)
    assert isinstance(compiled, SQLCompiler)
    order = list(compiled.positiontup or ())
    require(
        len(order) == 2
        and order[0] == "a_value"
        and str(compiled).count("?") == 2
        and set(order) <= set(compiled.params)
        and set(order) <= set(compiled.binds),
        dist,
        "the SQLite dialect compiles to qmark SQL whose positiontup names every ? in order, "
        "each in params and binds",
        f"{check}; positiontup={order!r}, params={compiled.params!r}",
    )
    prepared = PreparedStatement(statement)
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE t (a INTEGER, b VARCHAR)")
        connection.executemany("INSERT INTO t VALUES (?, ?)", [(1, "y"), (1, "z"), (2, "y")])
        rows = connection.execute(prepared.sql, prepared.parameters(a_value=1)).fetchall()
    finally:
        connection.close()
    require(rows == [("y",)], dist, "a PreparedStatement runs as SQLAlchemy would", check)


def test_sqlalchemy_compiles_positional_sqlite_statements() -> None:
    check_sqlalchemy_positional_compile()


# --- each guard fails loudly when its dependency changes -----------------------------------


@pytest.fixture
def expect_guard_failure() -> Iterator[Callable[[str], Any]]:
    """``with expect(dist):`` asserts the block raises a GuardError naming ``dist``."""

    def expect(dist: str) -> Any:
        return pytest.raises(GuardError, match=rf"^{dist} {version(dist)}: .+ Check: ")

    yield expect


async def test_a_broken_uvicorn_websocket_attribute_fails_its_guard(
    monkeypatch: pytest.MonkeyPatch, expect_guard_failure: Callable[[str], Any]
) -> None:
    original = WebSocketsSansIOProtocol.__init__

    @functools.wraps(original)
    def renamed(self: WebSocketsSansIOProtocol, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.message_type = self.__dict__.pop("curr_msg_data_type")

    monkeypatch.setattr(WebSocketsSansIOProtocol, "__init__", renamed)
    with expect_guard_failure("uvicorn"):
        check_uvicorn_ws_attributes()


async def test_a_broken_uvicorn_frame_buffer_fails_its_guard(
    monkeypatch: pytest.MonkeyPatch, expect_guard_failure: Callable[[str], Any]
) -> None:
    def handle_bytes(self: WebSocketsSansIOProtocol, event: Frame) -> None:
        self.fragments = [event.data]  # a release that renames ``frames``
        if event.fin:
            self.send_receive_event_to_app()

    monkeypatch.setattr(WebSocketsSansIOProtocol, "handle_bytes", handle_bytes)
    with expect_guard_failure("uvicorn"):
        await check_uvicorn_ws_direct_path(compression=False)


async def test_a_broken_h11_state_fails_its_guard(
    monkeypatch: pytest.MonkeyPatch, expect_guard_failure: Callable[[str], Any]
) -> None:
    monkeypatch.setattr(h11.Connection, "their_state", property(lambda self: h11.IDLE))
    with expect_guard_failure("h11"):
        await check_h11_head_states()


def test_a_broken_pycrdt_delta_fails_its_guard(
    monkeypatch: pytest.MonkeyPatch, expect_guard_failure: Callable[[str], Any]
) -> None:
    def observe_text_in_chars(text: Text, callback: Callable[[Any], None]) -> Any:
        # A release counting deltas in characters instead of UTF-8 bytes.
        class Event:
            def __init__(self, event: Any) -> None:
                self.delta = [{"delete": 1} if "delete" in item else item for item in event.delta]

        return text.integrated.observe(lambda event: callback(Event(event)))

    monkeypatch.setattr(f"{__name__}.observe_text_raw", observe_text_in_chars)
    with expect_guard_failure("pycrdt"):
        check_pycrdt_raw_observers()


def test_a_missing_pycrdt_raw_text_fails_its_guard(
    monkeypatch: pytest.MonkeyPatch, expect_guard_failure: Callable[[str], Any]
) -> None:
    monkeypatch.delattr(pycrdt._base.BaseType, "integrated")
    with expect_guard_failure("pycrdt"):
        check_pycrdt_raw_observers()


async def test_a_redis_read_that_raises_on_its_timeout_fails_its_guard(
    monkeypatch: pytest.MonkeyPatch,
    expect_guard_failure: Callable[[str], Any],
    fake_redis: tuple[FakeRedis, str],
) -> None:
    original = AbstractConnection.read_response

    async def raising(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        response = await original(self, *args, **kwargs)
        if response is None:
            raise TimeoutError("a release that raises instead of returning None")
        return response

    monkeypatch.setattr(AbstractConnection, "read_response", raising)
    with expect_guard_failure("redis"):
        await check_redis_connection_behaviour(*fake_redis)


def test_a_redis_signature_change_fails_its_guard(
    monkeypatch: pytest.MonkeyPatch, expect_guard_failure: Callable[[str], Any]
) -> None:
    async def get_connection(self: ConnectionPool, command_name: str) -> Any:
        raise NotImplementedError

    monkeypatch.setattr(ConnectionPool, "get_connection", get_connection)
    with expect_guard_failure("redis"):
        check_redis_connection_api()


def test_a_broken_sqlalchemy_parameter_order_fails_its_guard(
    monkeypatch: pytest.MonkeyPatch, expect_guard_failure: Callable[[str], Any]
) -> None:
    original = SQLCompiler._process_positional

    def reordered(self: SQLCompiler) -> None:
        # A release whose positiontup no longer follows the order of the ? in the SQL.
        original(self)
        if self.positiontup:
            self.positiontup.reverse()

    monkeypatch.setattr(SQLCompiler, "_process_positional", reordered)
    with expect_guard_failure("sqlalchemy"):
        check_sqlalchemy_positional_compile()


def test_a_doc_kept_alive_by_its_observer_fails_its_guard(
    monkeypatch: pytest.MonkeyPatch, expect_guard_failure: Callable[[str], Any]
) -> None:
    # pycrdt's public Doc.observe is the observer that keeps its Doc alive.
    monkeypatch.setattr(
        "crdt.document.observe_transactions_raw", lambda doc, callback: doc.observe(callback)
    )
    with expect_guard_failure("pycrdt"):
        check_pycrdt_document_is_freed()
