"""The y-websocket protocol: binary frames from stock Yjs clients.

Exactly one message per frame: sync step 1/2 and update (type 0), awareness (1), query
awareness (3). A frame that cannot be decoded closes its own connection (1002); nothing is
applied from it and no other client notices. Awareness frames are decoded within the room's
awareness caps (:mod:`server.hub.awareness`): what exceeds them is dropped, not closed.
"""

from __future__ import annotations

from crdt import ProtocolError, UpdateError
from crdt.codec import (
    MessageType,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_permission_denied,
    encode_sync_step1,
    encode_sync_step2,
    read_var_uint,
)
from server.hub.awareness import decode_awareness_frame
from server.hub.closing import CloseCode, CloseConnection
from server.hub.connection import ClientConnection
from server.hub.doc_size import DocumentTooLarge, check_update
from server.hub.room import Room
from server.hub.traffic import yjs_type

# What a Yjs client sends when it has nothing the server lacks: no structs, empty delete set.
EMPTY_UPDATE = b"\x00\x00"


def greet_yjs(room: Room, conn: ClientConnection) -> None:
    """What the server says first to a Yjs client: its state vector, then who is here."""
    conn.send_yjs(encode_sync_step1(room.document.state_vector()))
    if room.awareness.states:
        conn.send_yjs(room.awareness.snapshot())


def handle_binary_frame(room: Room, conn: ClientConnection, frame: bytes) -> None:
    """Handle one binary frame from a Yjs client."""
    room.traffic.inbound["yjs", yjs_type(frame)] += 1
    if _message_type(frame) == MessageType.AWARENESS:
        _update_awareness(room, conn, frame)
        return
    try:
        message = decode_message(frame)
    except ProtocolError as exc:
        raise CloseConnection(CloseCode.PROTOCOL_ERROR, f"malformed message: {exc}") from None
    if isinstance(message, SyncStep1):
        try:
            diff = room.document.encode_state_as_update(message.state_vector)
        except (ProtocolError, UpdateError) as exc:
            raise CloseConnection(CloseCode.INVALID_PAYLOAD, f"bad state vector: {exc}") from None
        conn.send_yjs(encode_sync_step2(diff))
    elif isinstance(message, SyncStep2 | SyncUpdate):
        _apply_update(room, conn, message.update)
    elif isinstance(message, QueryAwareness):
        conn.send_yjs(room.awareness.snapshot())


def _message_type(frame: bytes) -> int | None:
    """The frame's message type, or None if even that cannot be read (decode_message says why).

    Read as a varuint, not compared with a first byte: lib0 also reads 1 from ``81 00``.
    """
    try:
        return read_var_uint(frame)[0]
    except ProtocolError:
        return None


def _update_awareness(room: Room, conn: ClientConnection, frame: bytes) -> None:
    """Decoded here rather than by :func:`decode_message`, which would parse every entry of a
    message that may declare far more than the room lets it set."""
    try:
        decoded = decode_awareness_frame(frame, room.awareness.limits)
    except ProtocolError as exc:
        raise CloseConnection(CloseCode.PROTOCOL_ERROR, f"bad awareness: {exc}") from None
    if decoded.refused is not None:
        room.awareness.refuse(conn, decoded.refused)
    if decoded.entries:
        room.update_awareness(conn, conn.user_id, decoded.entries)


def _apply_update(room: Room, conn: ClientConnection, update: bytes) -> None:
    if update == EMPTY_UPDATE:
        return
    if not conn.can_edit:
        # Refused: neither applied nor relayed. The client is told, in y-websocket's own terms.
        conn.send_yjs(encode_permission_denied(f"a {conn.role} cannot change this document"))
        return
    if not room.admit_edit():
        # Not applied, so not relayed: the client keeps the change and sends it again in the
        # sync step 2 of its reconnection (y-websocket reconnects by itself).
        raise CloseConnection(
            CloseCode.TRY_AGAIN_LATER, "server busy storing edits; reconnect to resend"
        )
    try:
        check_update(room.document, update, room.max_document_bytes)
    except DocumentTooLarge as exc:
        # Not applied, so no peer has it; the client keeps it and is refused again if it
        # resends it on reconnecting.
        raise CloseConnection(CloseCode.DOCUMENT_TOO_LARGE, str(exc)) from None
    try:
        change = room.document.apply_update(update, origin="user")
    except UpdateError as exc:
        raise CloseConnection(CloseCode.INVALID_PAYLOAD, f"bad update: {exc}") from None
    room.commit(change, user_id=conn.user_id, author=conn)
