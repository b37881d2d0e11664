"""Which JSON ops of each user a room has applied, by the client's own op id.

A JSON client may tag an op with ``op_id``; an op whose id the room already knows for that user
is never applied again: a resend (after a reconnect, to this node or another) gets the ack of
the first one instead. The room keeps the last ``per_user`` ids of each user who joined it; the
ids are also stored on the op's history row, and read back at every join, so they survive an
unload, a restart and a move to another node.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def op_digest(op: dict[str, Any]) -> str:
    """A short fingerprint of an op as its client sent it (to tell a resend from a reuse)."""
    canonical = json.dumps(op, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


@dataclass(slots=True)
class LandedOp:
    """An op the room applied (or found already done): its digest and, while its history row
    is being committed, the future that resolves when it is durable (None once known stored).

    ``remote`` marks an op another node applied and announced (over the broker) before this
    node could read its row: it is in the document, but not known here to be stored yet.
    """

    digest: str | None
    durable: asyncio.Future[list[int]] | None = None
    remote: bool = False


class OpLedger:
    """The last op ids of each user in one room, oldest first."""

    def __init__(self, per_user: int, max_id_chars: int) -> None:
        if per_user < 1 or max_id_chars < 1:
            raise ValueError("per_user and max_id_chars must be at least 1")
        self.per_user = per_user
        self.max_id_chars = max_id_chars
        self._users: dict[str, OrderedDict[str, LandedOp]] = {}

    def find(self, user_id: str, op_id: str) -> LandedOp | None:
        """The op this user applied under ``op_id``, if still remembered."""
        ops = self._users.get(user_id)
        return None if ops is None else ops.get(op_id)

    def record(self, user_id: str, op_id: str, landed: LandedOp) -> None:
        """Remember an op just applied, forgetting the user's oldest beyond the bound."""
        ops = self._users.setdefault(user_id, OrderedDict())
        ops[op_id] = landed
        ops.move_to_end(op_id)
        while len(ops) > self.per_user:
            ops.popitem(last=False)

    def record_remote(self, user_id: str, op_id: str, digest: str) -> None:
        """Remember an op another node applied (unless this node knows it already)."""
        if self.find(user_id, op_id) is None:
            self.record(user_id, op_id, LandedOp(digest, remote=True))

    def merge_stored(self, user_id: str, stored: Iterable[tuple[str, str | None]]) -> None:
        """Add ids read from storage (oldest first) ahead of those applied here since; a
        remote op found stored is known durable from now on."""
        ops = self._users.get(user_id, OrderedDict())
        merged: OrderedDict[str, LandedOp] = OrderedDict()
        for op_id, digest in stored:
            known = ops.get(op_id)
            if known is None:
                merged[op_id] = LandedOp(digest)
            elif known.remote:
                known.remote = False
        merged.update(ops)
        while len(merged) > self.per_user:
            merged.popitem(last=False)
        self._users[user_id] = merged

    def landed_ids(self, user_id: str) -> list[str]:
        """The user's remembered op ids, oldest first (for the welcome)."""
        return list(self._users.get(user_id, ()))

    def counts(self) -> tuple[int, int]:
        """How many users and op ids are remembered (for the operator's debug counts)."""
        return len(self._users), sum(len(ops) for ops in self._users.values())
