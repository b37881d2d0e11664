"""The JSON protocol: text frames from clients that have no CRDT of their own.

Client → server: ``op`` (with the revision it was made against, optionally an ``op_id`` that
makes resending it safe: see :mod:`server.hub.op_ids`), ``presence`` (cursor),
``ping``, ``resync``. Server → client: ``welcome``, ``ack``, ``op``, ``presence``, ``role``,
``error``, ``pong``. A bad message earns its sender an ``error`` frame and changes nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from crdt import OpError, parse_op, transform_through
from crdt.codec import AwarenessEntry
from server.hub.connection import ClientConnection, Deferred, dumps
from server.hub.doc_size import DocumentTooLarge, check_op
from server.hub.op_ids import LandedOp, op_digest
from server.hub.room import Room, StaleRevisionError
from server.hub.traffic import json_type
from storage.history_writer import SessionGoneError

MAX_OP_CONTENT_CHARS = 1_000_000


def error_message(code: str, message: str, msg_id: Any = None, **extra: Any) -> dict[str, Any]:
    """An ``error`` frame, echoing the client's message id when it sent one."""
    body: dict[str, Any] = {"type": "error", "code": code, "message": message, "id": msg_id}
    body.update(extra)
    return body


def welcome_message(room: Room, conn: ClientConnection) -> dict[str, Any]:
    """The first frame a JSON client receives: the document, its revision, who is here."""
    online = {c.user_id for c in room.connections}
    return {
        "type": "welcome",
        "session": {"id": room.session_id, "name": room.name, "description": room.description},
        "user": {
            "id": conn.user_id,
            "name": conn.principal.name,
            "email": conn.principal.email,
            "color": conn.principal.color,
        },
        "role": conn.role,
        "rev": room.rev,
        "content": room.text,
        "client_id": conn.awareness_client_id,
        "members": [dict(m, online=m["user_id"] in online) for m in room.roster.values()],
        "presence": room.presence_list(),
        # This user's last op ids the document already holds: drop them, resend the others.
        "landed_op_ids": room.ops.landed_ids(conn.user_id),
    }


def handle_json_frame(room: Room, conn: ClientConnection, raw: str) -> None:
    """Handle one text frame from a JSON client."""
    try:
        message = json.loads(raw)
    except ValueError as exc:
        conn.send_json(error_message("malformed_json", f"the frame is not valid JSON: {exc}"))
        return
    except RecursionError:
        # No message of this protocol nests more than a few levels.
        conn.send_json(error_message("malformed_json", "the frame's JSON is nested too deeply"))
        return
    if not isinstance(message, dict):
        conn.send_json(error_message("invalid_message", "a message must be a JSON object"))
        return
    msg_id = message.get("id")
    if msg_id is not None and (not isinstance(msg_id, str | int) or isinstance(msg_id, bool)):
        conn.send_json(error_message("invalid_message", "id must be a string or an integer"))
        return
    kind = message.get("type")
    room.traffic.inbound["json", json_type(kind)] += 1
    if kind == "op":
        _handle_op(room, conn, message, msg_id)
    elif kind == "presence":
        _handle_presence(room, conn, message, msg_id)
    elif kind == "ping":
        conn.send_json({"type": "pong", "id": msg_id})
    elif kind == "resync":
        conn.send_json(welcome_message(room, conn))
    elif isinstance(kind, str):
        conn.send_json(error_message("unknown_type", f"unknown message type {kind!r}", msg_id))
    else:
        conn.send_json(error_message("invalid_message", "type must be a string", msg_id))


def _handle_op(room: Room, conn: ClientConnection, message: dict[str, Any], msg_id: Any) -> None:
    if not conn.can_edit:
        conn.send_json(
            error_message("forbidden", f"a {conn.role} cannot change this document", msg_id)
        )
        return
    op_id = _valid_op_id(message.get("op_id"), room.ops.max_id_chars)
    if isinstance(op_id, _Invalid):
        conn.send_json(error_message("invalid_op_id", op_id.reason, msg_id, field="op_id"))
        return
    rev = message.get("rev")
    try:
        op = parse_op(message.get("op"), max_content_chars=MAX_OP_CONTENT_CHARS)
    except OpError as exc:
        conn.send_json(error_message(exc.code, exc.message, msg_id, field=exc.field))
        return
    tag = (op_id, op_digest(op.to_json())) if op_id is not None else None
    if tag is not None:
        landed = room.ops.find(conn.user_id, tag[0])
        if landed is not None:
            # Checked before the revision: a resend may carry one from an earlier connection.
            _answer_resend(room, conn, landed, tag, msg_id)
            return
    if not isinstance(rev, int) or isinstance(rev, bool):
        conn.send_json(error_message("invalid_op", "rev must be an integer", msg_id, field="rev"))
        return
    try:
        concurrent = room.ops_since(rev)
    except OpError as exc:
        conn.send_json(error_message(exc.code, exc.message, msg_id, field=exc.field))
        return
    except StaleRevisionError as exc:
        conn.send_json(error_message("stale_rev", str(exc), msg_id, rev=room.rev))
        return
    except ValueError as exc:
        conn.send_json(error_message("invalid_rev", str(exc), msg_id, field="rev", rev=room.rev))
        return
    transformed = transform_through(op, concurrent)
    if transformed is None:
        # Everything it meant to do was already done by someone else (e.g. a double delete).
        if tag is not None:
            room.ops.record(conn.user_id, tag[0], LandedOp(tag[1]))
        conn.send_json(_ack(msg_id, op_id, rev=room.rev, noop=True))
        return
    if not room.admit_edit():
        conn.send_json(
            error_message(
                "overloaded", "the server is busy storing edits; resend this op shortly", msg_id
            )
        )
        return
    try:
        check_op(room.document, transformed, room.max_document_bytes)
    except DocumentTooLarge as exc:
        conn.send_json(error_message("document_too_large", str(exc), msg_id, limit=exc.limit))
        return
    try:
        change = room.document.apply_op(transformed)
    except OpError as exc:
        conn.send_json(error_message(exc.code, exc.message, msg_id, field=exc.field))
        return
    rev_after, durable = room.commit(change, user_id=conn.user_id, author=conn, client_op=tag)
    if tag is not None:
        room.ops.record(conn.user_id, tag[0], LandedOp(tag[1], durable))
    applied = change.ops[-1].to_json() if len(change.ops) == 1 else None
    conn.traffic.outbound["json", "ack"] += 1
    conn.send(
        Deferred(
            durable,
            on_result=lambda _ids: dumps(_ack(msg_id, op_id, rev=rev_after, op=applied)),
            on_error=_durability_error(msg_id),
        )
    )


def _ack(msg_id: Any, op_id: str | None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "ack", "id": msg_id}
    if op_id is not None:
        body["op_id"] = op_id
    body.update(fields)
    return body


def _durability_error(msg_id: Any) -> Callable[[BaseException], str]:
    def on_error(exc: BaseException) -> str:
        if isinstance(exc, SessionGoneError):
            return dumps(error_message("session_deleted", "the session was deleted", msg_id))
        return dumps(error_message("persist_failed", "the edit could not be stored", msg_id))

    return on_error


def _answer_resend(
    room: Room, conn: ClientConnection, landed: LandedOp, tag: tuple[str, str], msg_id: Any
) -> None:
    """Answer an op whose id this user already used: the first one's ack, or a refusal when
    the id came with a different op. Nothing is applied either way."""
    op_id, digest = tag
    if landed.digest is not None and landed.digest != digest:
        conn.send_json(
            error_message(
                "op_id_reused",
                f"op_id {op_id!r} was already used for a different op; give every op its own id",
                msg_id,
                field="op_id",
            )
        )
        return
    if landed.remote:
        conn.send_json(
            error_message(
                "op_unconfirmed",
                f"op_id {op_id!r} was applied on another server node and is not known here to "
                "be stored yet; it is in the document, so do not send it again under a new id",
                msg_id,
                field="op_id",
            )
        )
        return
    # The op is in the document already; the client has seen it in its welcome's content (or
    # in the stream), so this ack carries no op to apply, only the revision it has reached.
    rev = room.rev
    if landed.durable is None:
        conn.send_json(_ack(msg_id, op_id, rev=rev, op=None, duplicate=True))
        return
    conn.traffic.outbound["json", "ack"] += 1
    conn.send(
        Deferred(
            landed.durable,
            on_result=lambda _ids: dumps(_ack(msg_id, op_id, rev=rev, op=None, duplicate=True)),
            on_error=_durability_error(msg_id),
        )
    )


class _Invalid:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _valid_op_id(value: Any, max_chars: int) -> str | _Invalid | None:
    """The op's client id (None when it has none), or why it is refused."""
    if value is None:
        return None
    if not isinstance(value, str):
        return _Invalid("op_id must be a string")
    if not value:
        return _Invalid("op_id must not be empty")
    if len(value) > max_chars:
        return _Invalid(f"op_id is longer than {max_chars} characters")
    if not value.isprintable():
        return _Invalid("op_id must not contain control characters")
    return value


def _valid_cursor(value: Any, length: int) -> dict[str, int] | str | None:
    """The cursor as given, or an error text."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return "cursor must be an object {anchor, head} or null"
    cursor: dict[str, int] = {}
    for key in ("anchor", "head"):
        pos = value.get(key)
        if not isinstance(pos, int) or isinstance(pos, bool):
            return f"cursor.{key} must be an integer"
        if not 0 <= pos <= length:
            return f"cursor.{key} {pos} is outside the document (0..{length})"
        cursor[key] = pos
    return cursor


def _handle_presence(
    room: Room, conn: ClientConnection, message: dict[str, Any], msg_id: Any
) -> None:
    cursor = _valid_cursor(message.get("cursor"), room.document.utf16_length)
    if isinstance(cursor, str):
        conn.send_json(error_message("invalid_presence", cursor, msg_id, field="cursor"))
        return
    if cursor == conn.cursor and conn.awareness_client_id in room.awareness.states:
        return  # nothing new to tell anyone (the server renews the state itself)
    conn.cursor = cursor
    conn.awareness_clock += 1
    state: dict[str, Any] = {
        "user": {"id": conn.user_id, "name": conn.principal.name, "color": conn.principal.color},
        "cursor": cursor,
    }
    entry = AwarenessEntry(conn.awareness_client_id, conn.awareness_clock, state)
    room.update_awareness(conn, conn.user_id, [entry])
