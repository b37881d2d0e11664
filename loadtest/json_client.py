"""A client of Prompt Studio's JSON op protocol (our server only).

It follows the protocol's rules (README, "Text frames: JSON"): the server greets it with
``welcome`` (text and revision); it keeps **one op in flight** — the next op is sent only after
the previous one is acknowledged — and bases every op on the latest revision it has seen. It
tracks the document's length in UTF-16 code units from the stream (others' ``op`` frames and
the op of each ``ack``, in order), so a random insert position is always valid at the revision
the op names. Other clients' markers are read from the content of the ``op`` frames.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

from loadtest.client_base import Client
from loadtest.markers import find_markers, marker
from loadtest.model import ClientSpec, WorkerResult


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units (JavaScript's ``String.length``)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


class JsonOpClient(Client):
    """One JSON-protocol client."""

    def __init__(self, spec: ClientSpec, result: WorkerResult, rng: random.Random) -> None:
        """Prepare the client; the server speaks first (``welcome``) once connected."""
        super().__init__(spec, result, rng)
        self.rev = 0
        self.length = 0
        self._in_flight: tuple[str, float] | None = None
        self._acked = asyncio.Event()
        self._acked.set()

    @property
    def busy(self) -> bool:
        """Whether an op is waiting for its ack."""
        return self._in_flight is not None

    def on_binary(self, frame: bytes) -> None:
        """A JSON connection never receives binary frames."""
        self.result.errors.add("json:binary_frame", repr(frame[:40]))

    def on_text(self, frame: str) -> None:
        """Track the revision and length; record markers; settle acks."""
        try:
            message: dict[str, Any] = json.loads(frame)
        except ValueError as exc:
            self.result.errors.add("json:malformed_frame", str(exc))
            return
        kind = message.get("type")
        if kind == "op":
            self.rev = int(message["rev"])
            op = message["op"]
            self._track(op)
            content = op.get("content")
            if isinstance(content, str):
                self.record_markers(find_markers(content))
        elif kind == "ack":
            self.rev = max(self.rev, int(message["rev"]))
            if message.get("op") is not None:
                self._track(message["op"])
            self._settle(message.get("id"), ok=True)
        elif kind == "welcome":
            self.rev = int(message["rev"])
            self.length = utf16_length(message["content"])
            self.mark_ready()
        elif kind == "error":
            code = message.get("code")
            self.result.errors.add(f"json:{code}", str(message.get("message")))
            self._settle(message.get("id"), ok=False)
        # presence, role and pong frames carry no edits: ignored.

    def _track(self, op: dict[str, Any]) -> None:
        kind = op.get("type")
        inserted = utf16_length(op.get("content") or "")
        if kind == "insert":
            self.length += inserted
        elif kind == "delete":
            self.length -= int(op.get("length", 0))
        elif kind == "replace":
            self.length += inserted - int(op.get("length", 0))

    def _settle(self, op_id: object, *, ok: bool) -> None:
        if self._in_flight is None or op_id != self._in_flight[0]:
            return
        if ok:
            self.result.acks.append(time.monotonic() - self._in_flight[1])
        self._in_flight = None
        self._acked.set()

    def on_gone(self) -> None:
        """Nothing will be acknowledged any more: release a waiting edit."""
        self._acked.set()

    async def edit(self, seq: int, deadline: float) -> bool:
        """Wait (until ``deadline``) for the previous ack, then send an insert."""
        if self._in_flight is not None:
            try:
                await asyncio.wait_for(self._acked.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
        if not self.alive or time.monotonic() >= deadline:
            return False
        op_id = str(seq)
        frame = json.dumps(
            {
                "type": "op",
                "id": op_id,
                "rev": self.rev,
                "op": {
                    "type": "insert",
                    "position": self.rng.randint(0, self.length),
                    "content": marker(self.client_id, seq),
                },
            },
            separators=(",", ":"),
        )
        sent_at = time.monotonic()
        self._in_flight = (op_id, sent_at)
        self._acked.clear()
        if not self.send(frame):
            self._in_flight = None
            self._acked.set()
            return False
        self.result.sends.append((self.client_id, seq, sent_at))
        return True
