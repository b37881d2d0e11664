"""Collaborative-editing core: the CRDT document, JSON edit ops, and the y-websocket codec.

Pure code: no network, no storage; depends only on pycrdt and the standard library.
"""

from crdt.codec import (
    AwarenessEntry,
    AwarenessMessage,
    Message,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_awareness,
    decode_message,
    encode_awareness,
    encode_awareness_message,
    encode_message,
    encode_permission_denied,
    encode_query_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
)
from crdt.document import TEXT_NAME, Change, PromptDocument
from crdt.errors import CrdtError, OpError, ProtocolError, UpdateError
from crdt.ops import EditOp, OpOrigin, OpType, parse_op, transform, transform_through
from crdt.positions import (
    index_to_utf16,
    utf8_to_utf16,
    utf16_length,
    utf16_to_index,
    utf16_to_utf8,
)

__all__ = [
    "TEXT_NAME",
    "AwarenessEntry",
    "AwarenessMessage",
    "Change",
    "CrdtError",
    "EditOp",
    "Message",
    "OpError",
    "OpOrigin",
    "OpType",
    "PromptDocument",
    "ProtocolError",
    "QueryAwareness",
    "SyncStep1",
    "SyncStep2",
    "SyncUpdate",
    "UpdateError",
    "decode_awareness",
    "decode_message",
    "encode_awareness",
    "encode_awareness_message",
    "encode_message",
    "encode_permission_denied",
    "encode_query_awareness",
    "encode_sync_step1",
    "encode_sync_step2",
    "encode_sync_update",
    "index_to_utf16",
    "parse_op",
    "transform",
    "transform_through",
    "utf8_to_utf16",
    "utf16_length",
    "utf16_to_index",
    "utf16_to_utf8",
]
