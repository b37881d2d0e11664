"""A Yjs client over the y-websocket protocol: a pycrdt ``Doc`` per client.

Handshake as a stock ``WebsocketProvider`` does it: on open it sends sync step 1 (its state
vector) and answers the server's step 1 with step 2; it is in sync once the server's step 2 has
been applied. An edit inserts the marker into the ``Y.Text`` named ``content`` at a random
position and sends the resulting update as a sync update. Received updates are applied to the
document, and every other client's marker that the application *integrates* is recorded, timed
at the frame's arrival. Two ways to see what was integrated (``--yjs-observer``):

* ``update`` (default): after each apply the document's state vector says, per author, how many
  of their edits are integrated (:class:`~loadtest.markers.EditClocks`; an update waiting for
  missing dependencies counts only once it is integrated). Edits go at random positions, which
  need only the text's length. Neither costs more as the document grows.
* ``delta``: a ``Text`` observer reads the inserted strings out of the change delta, as an editor
  binding would. Yrs computes a delta's ``retain`` by walking the text from its start, so the
  cost grows with the document (measured: 16 µs per update at first, 73 µs after 3,000 random
  inserts) and a single generator core saturates well before the server does.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

from pycrdt import Doc, Text, TextEvent

from crdt.codec import (
    MessageType,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
)
from crdt.errors import ProtocolError
from loadtest.client_base import Client
from loadtest.markers import (
    EditClocks,
    decode_state_vector,
    find_markers,
    marker,
    outside_markers,
    yjs_client_id,
)
from loadtest.model import ClientSpec, WorkerResult

Observer = Literal["update", "delta"]
OBSERVERS: tuple[Observer, ...] = ("update", "delta")

TEXT_NAME = "content"
"""The shared type a stock Prompt Studio editor binds to."""


class YjsClient(Client):
    """One Yjs document connected over y-websocket."""

    def __init__(
        self,
        spec: ClientSpec,
        result: WorkerResult,
        rng: random.Random,
        *,
        observer: Observer = "update",
    ) -> None:
        """Create the document and its observer; the socket opens in :meth:`connect`."""
        super().__init__(spec, result, rng)
        self.doc: Doc[Text] = Doc(client_id=yjs_client_id(self.client_id))
        self.text = Text()
        self.doc[TEXT_NAME] = self.text
        self._observer = observer
        self._clocks = EditClocks()
        self._last_state = b""
        self._last_clocks: dict[int, int] = {}
        if observer == "delta":
            self.text.observe(self._on_delta)

    def on_open(self) -> None:
        """Send sync step 1, like ``WebsocketProvider`` on open."""
        self.send(encode_sync_step1(self.doc.get_state()))

    def on_text(self, frame: str) -> None:
        """y-websocket servers never send text frames."""
        self.result.errors.add("yjs:text_frame", frame[:80])

    def on_binary(self, frame: bytes) -> None:
        """Handle one y-websocket message."""
        if frame[:1] == bytes((MessageType.AUTH,)):
            self.result.errors.add("yjs:permission_denied", repr(frame[:80]))
            return
        try:
            message = decode_message(frame)
        except ProtocolError as exc:
            self.result.errors.add("yjs:bad_frame", str(exc))
            return
        if isinstance(message, SyncStep1):
            self.send(encode_sync_step2(self.doc.get_update(message.state_vector)))
        elif isinstance(message, SyncStep2):
            self._apply(message.update)
            self.mark_ready()
        elif isinstance(message, SyncUpdate):
            self._apply(message.update)
        # Awareness and query-awareness frames carry no edits: ignored.

    def _apply(self, update: bytes) -> None:
        try:
            self.doc.apply_update(update)
        except Exception as exc:  # pycrdt raises plain exceptions for undecodable updates
            self.result.errors.add("yjs:bad_update", repr(exc))
            return
        if self._observer == "update":
            self._record_integrated()

    def _record_integrated(self) -> None:
        """Record the edits the document's state vector newly covers."""
        state = self.doc.get_state()
        if state == self._last_state:
            return  # nothing was integrated (a duplicate, or an update still waiting)
        self._last_state = state
        found: list[tuple[int, int]] = []
        last = self._last_clocks
        for yjs_client, clock in decode_state_vector(state).items():
            if last.get(yjs_client) == clock:
                continue
            last[yjs_client] = clock
            author = yjs_client - 1
            if author != self.client_id:
                found.extend((author, seq) for seq in self._clocks.covered(author, clock))
        if found:
            self.record_markers(found)

    def _on_delta(self, event: TextEvent) -> None:
        delta: list[dict[str, Any]] = event.delta  # type: ignore[attr-defined]
        for item in delta:
            inserted = item.get("insert")
            if isinstance(inserted, str):
                self.record_markers(find_markers(inserted))

    async def edit(self, seq: int, deadline: float) -> bool:
        """Insert the marker at a random position and send the update at once."""
        position = self.rng.randint(0, len(self.text))
        if self._observer == "delta":
            position = outside_markers(str(self.text), position)
        before = self.doc.get_state()
        self.text.insert(position, marker(self.client_id, seq))
        frame = encode_sync_update(self.doc.get_update(before))
        sent_at = time.monotonic()
        if not self.send(frame):
            return False
        self.result.sends.append((self.client_id, seq, sent_at))
        return True
