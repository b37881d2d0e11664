"""``GET /ws/{share_token}``: admitting a client to a room and serving its socket.

Admission order: check the page's Origin (4403, see :mod:`server.origins`), authenticate
(4401), find the session by share token (4404), check it is active (4410) and of the caller's
tenant (4403), make the caller a member (VIEWER unless already one), then join the room
unless the session or the user holds the maximum of connections (4429, see
:mod:`server.hub.limits`). An address with too many failed authentications is refused (4429)
before anything is read; a connection closes (4401) when its login session expires.
The receive loop enforces the frame size (1009) and rate limit (1008) and dispatches frames to
the protocol of the connection; a :class:`CloseConnection` raised anywhere ends up here, as the
one place that turns it into a close frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import uuid
from datetime import datetime

from sqlalchemy.exc import DBAPIError
from starlette.websockets import WebSocket, WebSocketState

from server.auth import Principal, extract_token, principal_of
from server.hub.closing import CloseCode, CloseConnection
from server.hub.connection import ClientConnection, WireProtocol
from server.hub.json_protocol import error_message, handle_json_frame, welcome_message
from server.hub.limits import SocketGuard
from server.hub.ratelimit import TokenBucket
from server.hub.room import Room
from server.hub.wire import DIRECT_EXTENSION, DirectTransport
from server.hub.yjs_protocol import greet_yjs, handle_binary_frame
from server.logs import connection_id
from server.origins import origin_policy
from server.security import hash_secret
from server.services import Services, services_of
from storage.base import utcnow
from storage.repositories.collaboration import ensure_member, member_roster

logger = logging.getLogger(__name__)

# After this many messages over the rate limit a connection is closed (1008).
RATE_VIOLATIONS_BEFORE_CLOSE = 50

# What reaching a database that is down raises (refused, timed out, dropped mid-statement).
DATABASE_UNAVAILABLE_ERRORS = (OSError, DBAPIError)
DATABASE_UNAVAILABLE_REASON = "the database is unavailable: try again shortly"


# The close code of the socket being served, as the server sent it or the client did.
_close_code: contextvars.ContextVar[int | None] = contextvars.ContextVar("close_code", default=None)


async def collaboration_socket(websocket: WebSocket) -> None:
    """Serve one collaboration websocket from accept to close, logging both ends (with the
    close code) under the connection's id, like every line logged while serving it."""
    hub = services_of(websocket).hub
    hub.open_sockets += 1
    cid = uuid.uuid4().hex
    token = connection_id.set(cid)
    _close_code.set(None)
    # The share token is the path: server.logs masks it, this line never prints the query.
    logger.info("websocket open %s", websocket.url.path)
    try:
        await _serve(websocket, cid)
    finally:
        logger.info("websocket closed (code %s)", _close_code.get())
        connection_id.reset(token)
        hub.open_sockets -= 1


async def _serve(websocket: WebSocket, cid: str) -> None:
    services = services_of(websocket)
    await websocket.accept()
    origin_allowed = origin_policy(services.settings.allowed_origins).allows_socket(
        websocket.headers.get("origin"), websocket.headers.get("host")
    )
    if not origin_allowed:  # before admission: nothing is read or sent for a foreign page
        await _close(websocket, CloseCode.FORBIDDEN, "this origin may not open the socket")
        return
    guard = socket_guard(services)
    address = websocket.client.host if websocket.client is not None else ""
    retry_after = guard.auth_failures.retry_after(address)
    if retry_after is not None:
        await _close(
            websocket,
            CloseCode.TOO_MANY,
            f"too many failed logins from this address; retry in {math.ceil(retry_after)} s",
        )
        return
    hub = services.hub
    try:
        principal, session_id, role = await _admit(websocket, services)
        room = await hub.acquire(session_id)
    except CloseConnection as exc:
        if exc.code is CloseCode.UNAUTHENTICATED:
            guard.auth_failures.fail(address)
            await asyncio.sleep(guard.auth_failures.delay(address))  # slows a guesser down
        await _close(websocket, exc.code, exc.reason)
        return
    except LookupError:
        await _close(websocket, CloseCode.UNKNOWN_SHARE_TOKEN, "unknown share token")
        return
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        # A join needs the database (who is this, which session); an outage is not a bug, and
        # the client must learn that retrying later works (y-websocket does so on its own).
        logger.warning("refusing a join: database unavailable (%s)", type(exc).__name__)
        await _close(websocket, CloseCode.TRY_AGAIN_LATER, DATABASE_UNAVAILABLE_REASON)
        return
    settings = services.settings
    direct: DirectTransport | None = websocket.scope.get("extensions", {}).get(DIRECT_EXTENSION)
    conn = ClientConnection(
        websocket,
        principal,
        role,
        send_queue_limit=settings.send_queue_limit,
        rate_limit=TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst),
        direct=direct,
        traffic=hub.traffic,
        connection_id=cid,
    )
    entered = False
    expiry: asyncio.TimerHandle | None = None
    try:
        if not room.active:
            await _close(websocket, CloseCode.SESSION_INACTIVE, "the session is not active")
            return
        if not room.roster_loaded:
            async with services.sessions() as db:
                room.set_roster(await member_roster(db, session_id))
        room.note_member(principal.user_id, principal.name, principal.color, role)
        if requested_protocol(websocket) is not WireProtocol.YJS:
            await hub.refresh_op_ids(room, principal.user_id)
        # No await from this check to ``room.add``: concurrent joins cannot overshoot.
        refusal = guard.join_refusal(principal.user_id, len(room.connections))
        if refusal is not None:
            await _close(websocket, CloseCode.TOO_MANY, refusal)
            return
        conn.user_rate_limit = guard.enter(principal.user_id)
        entered = True
        room.add(conn)
        expiry = _expire_at_logout(conn, principal.expires_at)
        hub.presence.mark(session_id, principal.user_id)
        requested = requested_protocol(websocket)
        if requested is not None:
            _start(room, conn, requested)
        receiver = asyncio.create_task(
            _receive_loop(room, conn, settings.max_frame_bytes), name=f"receiver-{conn.id}"
        )
        ended = conn.ended()
        await asyncio.wait({receiver, ended}, return_when=asyncio.FIRST_COMPLETED)
        # Let a queued close frame go out; anything else left unsent is for a client gone.
        await conn.flush(timeout=2.0 if receiver.done() and conn.is_closing else 0.0)
        receiver.cancel()
        ended.cancel()
        (result,) = await asyncio.gather(receiver, return_exceptions=True)
        if isinstance(result, Exception):
            # A bug, not bad input: this connection ends, the document and others carry on.
            logger.error("connection %s failed", conn.id, exc_info=result)
            await _close(websocket, CloseCode.INTERNAL_ERROR, "internal server error")
        elif _close_code.get() is None:
            _close_code.set(
                conn.close_code if conn.close_code is not None else conn.peer_close_code
            )
    except DATABASE_UNAVAILABLE_ERRORS as exc:  # loading the roster or the op ids of a join
        logger.warning("refusing a join: database unavailable (%s)", type(exc).__name__)
        await _close(websocket, CloseCode.TRY_AGAIN_LATER, DATABASE_UNAVAILABLE_REASON)
    finally:
        if expiry is not None:
            expiry.cancel()
        if direct is not None:
            direct.set_receiver(None)
        if entered:
            guard.leave(principal.user_id)
            room.remove(conn)
        hub.presence.mark(session_id, principal.user_id)
        hub.release(room)


def socket_guard(services: Services) -> SocketGuard:
    """The node's cross-connection limits (built from the settings in bare test setups)."""
    if services.guard is None:
        services.guard = SocketGuard.from_settings(services.settings)
    return services.guard


def _expire_at_logout(
    conn: ClientConnection, expires_at: datetime | None
) -> asyncio.TimerHandle | None:
    """Close ``conn`` (4401) when its login session expires, not at its next join."""
    if expires_at is None:
        return None
    delay = max(0.0, (expires_at - utcnow()).total_seconds())
    return asyncio.get_running_loop().call_later(
        delay, conn.close, CloseCode.UNAUTHENTICATED, "the login session expired"
    )


async def _admit(websocket: WebSocket, services: Services) -> tuple[Principal, str, str]:
    """Who joins which session with what role: one statement (token owner, session and
    membership joined), two when the user becomes a member."""
    token = extract_token(websocket)
    if token is None:
        raise CloseConnection(
            CloseCode.UNAUTHENTICATED, "a login token is required (?token=… or a cookie)"
        )
    share_token = websocket.path_params["share_token"]
    login_hash = hash_secret(token)
    owner, target = await services.admission.read(login_hash, hash_secret(share_token))
    principal = principal_of(owner, login_hash)
    if principal is None:
        raise CloseConnection(CloseCode.UNAUTHENTICATED, "the login token is unknown or expired")
    if target is None:
        raise CloseConnection(CloseCode.UNKNOWN_SHARE_TOKEN, "unknown share token")
    if target.tenant_id != principal.tenant_id:
        raise CloseConnection(CloseCode.FORBIDDEN, "this session belongs to another organisation")
    if not target.is_active:
        raise CloseConnection(CloseCode.SESSION_INACTIVE, "the session is not active")
    role = target.member_role
    if not target.is_member:
        async with services.sessions() as db:
            member = await ensure_member(
                db, session_id=target.session_id, user_id=principal.user_id
            )
        role = member.role
    return principal, target.session_id, role or "VIEWER"


def requested_protocol(websocket: WebSocket) -> WireProtocol | None:
    """The protocol fixed by ``?protocol=``, or None when the first frame decides."""
    requested = websocket.query_params.get("protocol")
    if requested == "json":
        return WireProtocol.JSON
    if requested == "yjs":
        return WireProtocol.YJS
    return None


def _start(room: Room, conn: ClientConnection, protocol: WireProtocol) -> None:
    conn.protocol = protocol
    if protocol is WireProtocol.JSON:
        conn.send_json(welcome_message(room, conn))
    else:
        greet_yjs(room, conn)


async def _receive_loop(room: Room, conn: ClientConnection, max_frame_bytes: int) -> None:
    """Read the client's messages until it disconnects.

    On a direct transport, messages arriving from now on are handled by the transport's
    callback as they are parsed; this loop then only drains what arrived before (in order) and
    waits for the disconnect.
    """
    handle = FrameHandler(room, conn, max_frame_bytes)
    if conn.direct is not None:
        # The transport calls its receiver outside this task: run each frame in this task's
        # context, so lines logged while handling it carry the connection id (~0.1 µs a frame).
        context = contextvars.copy_context()

        def receive_in_context(frame: bytes | str) -> None:
            context.run(handle, frame)

        conn.direct.set_receiver(receive_in_context)
    websocket = conn.websocket
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            conn.peer_close_code = message.get("code")
            return
        data: bytes | None = message.get("bytes")
        handle(data if data is not None else message.get("text") or "")


class FrameHandler:
    """Handles one connection's incoming frames, synchronously, one at a time."""

    __slots__ = ("conn", "max_frame_bytes", "room")

    def __init__(self, room: Room, conn: ClientConnection, max_frame_bytes: int) -> None:
        self.room = room
        self.conn = conn
        self.max_frame_bytes = max_frame_bytes

    def __call__(self, frame: bytes | str) -> None:
        """Check one frame's size and rate, then dispatch it to the connection's protocol."""
        conn = self.conn
        if conn.is_closing:
            return  # a close is on its way: nothing more from this client is applied
        try:
            self._dispatch(conn, frame)
        except CloseConnection as exc:
            conn.close(exc.code, exc.reason)

    def _dispatch(self, conn: ClientConnection, frame: bytes | str) -> None:
        size = len(frame) if isinstance(frame, bytes) else len(frame.encode("utf-8"))
        if size > self.max_frame_bytes:
            raise CloseConnection(
                CloseCode.MESSAGE_TOO_BIG, f"frame of {size} bytes exceeds {self.max_frame_bytes}"
            )
        user_bucket = conn.user_rate_limit
        if not conn.rate_limit.take() or (user_bucket is not None and not user_bucket.take()):
            _over_rate_limit(conn)
            return
        if conn.protocol is None:
            detected = WireProtocol.YJS if isinstance(frame, bytes) else WireProtocol.JSON
            _start(self.room, conn, detected)
        if isinstance(frame, bytes):
            if conn.protocol is WireProtocol.JSON:
                conn.send_json(error_message("unexpected_binary", "this connection speaks JSON"))
                return
            handle_binary_frame(self.room, conn, frame)
        else:
            if conn.protocol is WireProtocol.YJS:
                raise CloseConnection(
                    CloseCode.UNSUPPORTED_DATA, "text frame on a y-websocket connection"
                )
            handle_json_frame(self.room, conn, frame)


def _over_rate_limit(conn: ClientConnection) -> None:
    conn.rate_violations += 1
    if conn.rate_violations > RATE_VIOLATIONS_BEFORE_CLOSE or conn.protocol is WireProtocol.YJS:
        # A Yjs client must not silently lose an update: close, it reconnects and resyncs.
        conn.close(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
        return
    if conn.rate_violations == 1 or conn.rate_violations % 10 == 0:
        conn.send_json(
            error_message("rate_limited", "too many messages; slow down (message dropped)")
        )


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    _close_code.set(code)
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close(code, reason)
