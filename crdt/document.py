"""The collaborative prompt document: a pycrdt ``Doc`` holding one ``Text`` named "content".

Every change, whether a JSON op or a Yjs update, goes through one pycrdt transaction and comes
back as a :class:`Change`: the Yjs update to broadcast, the equivalent UTF-16 ops, and the text
before and after. Methods are synchronous and not thread-safe; the caller serializes access.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Text, TransactionEvent, merge_updates

from crdt.delta import Piece, changes_to_ops, utf16_to_crdt_index
from crdt.errors import OpError, ProtocolError, UpdateError
from crdt.ops import EditOp, OpOrigin
from crdt.positions import utf8_length, utf16_length, utf16_to_index

__all__ = ["EMPTY_UPDATE", "TEXT_NAME", "Change", "PromptDocument"]

TEXT_NAME = "content"
"""Name of the root ``Text`` that holds the prompt (Yjs clients use ``doc.getText("content")``)."""

EMPTY_UPDATE = b"\x00\x00"
"""The encoding of a Yjs update that contains nothing."""


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of one transaction on a :class:`PromptDocument`.

    ``update`` is the Yjs update the transaction integrated (broadcast it to Yjs peers), or
    ``b""`` if the document did not change. ``ops`` describe the text change in UTF-16 units,
    each relative to the text left by the previous one: applying them in order to
    ``content_before`` yields ``content_after``.
    """

    update: bytes
    ops: list[EditOp]
    content_before: str
    content_after: str

    @property
    def text_changed(self) -> bool:
        """Whether the text changed (an update may change only other parts of the document)."""
        return self.content_before != self.content_after


class PromptDocument:
    """A prompt's CRDT document; see the module docstring."""

    def __init__(self, *, client_id: int | None = None) -> None:
        """Create an empty document (``client_id`` is random unless given, e.g. in tests)."""
        self._doc: Doc[Text] = Doc(client_id=client_id)
        self._text = self._doc.get(TEXT_NAME, type=Text)
        self._content = ""
        self._length16: int | None = 0

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def empty(cls, *, client_id: int | None = None) -> PromptDocument:
        """Create an empty document."""
        return cls(client_id=client_id)

    @classmethod
    def from_state(cls, state: bytes, *, client_id: int | None = None) -> PromptDocument:
        """Restore a document from its persisted full state (a Yjs update).

        Raises:
            UpdateError: ``state`` is not a valid Yjs update.
        """
        document = cls(client_id=client_id)
        document.apply_update(state)
        return document

    @classmethod
    def from_text(cls, text: str, *, client_id: int | None = None) -> PromptDocument:
        """Create a document holding ``text``.

        Only for a session that never had CRDT state: Yjs clients that already hold the text
        from another document would see it twice after merging.
        """
        document = cls(client_id=client_id)
        if text:
            document.apply_op(EditOp("insert", 0, 0, text, "sync"))
        return document

    # --- reading ----------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The current prompt text."""
        return self._content

    @property
    def utf16_length(self) -> int:
        """Length of the text in UTF-16 code units (JavaScript's ``text.length``)."""
        if self._length16 is None:
            self._length16 = utf16_length(self._content)
        return self._length16

    @property
    def client_id(self) -> int:
        """The Yjs client id this replica writes its own changes under."""
        return self._doc.client_id

    def state_vector(self) -> bytes:
        """The document's encoded state vector (the payload of a sync step 1)."""
        return self._doc.get_state()

    def encode_state_as_update(self, state_vector: bytes | None = None) -> bytes:
        """Everything a peer with ``state_vector`` is missing (the whole state if ``None``).

        Raises:
            ProtocolError: ``state_vector`` cannot be decoded; the document is untouched.
        """
        try:
            return self._doc.get_update(state_vector)
        except ValueError as exc:
            raise ProtocolError(f"malformed state vector: {exc}") from exc

    def full_state(self) -> bytes:
        """The whole document as one Yjs update, the form to persist."""
        return self._doc.get_update()

    # --- writing ----------------------------------------------------------------------------

    def apply_op(self, op: EditOp) -> Change:
        """Apply a JSON op (UTF-16 positions against the current text) in one transaction.

        Raises:
            OpError: ``out_of_range`` if the op's range exceeds the text or splits a surrogate
                pair; the document is untouched.
        """
        before = self._content
        total = self.utf16_length
        if op.position > total:
            raise OpError(
                "out_of_range",
                f"position {op.position} is past the end of the text (length {total})",
                "position",
            )
        if op.end > total:
            raise OpError(
                "out_of_range",
                f"position + length ({op.end}) is past the end of the text (length {total})",
                "length",
            )
        utf16_to_index(before, op.position)  # raises if it splits a surrogate pair
        utf16_to_index(before, op.end, field="length")
        pieces = self._pieces()
        start = utf16_to_crdt_index(pieces, op.position)
        stop = utf16_to_crdt_index(pieces, op.end) if op.length else start

        def mutate() -> None:
            with self._doc.transaction():
                if stop > start:
                    del self._text[start:stop]
                if op.content:
                    self._text.insert(start, op.content)

        return self._transact(mutate, pieces, op.origin)

    def apply_update(self, update: bytes, origin: OpOrigin = "sync") -> Change:
        """Apply a Yjs update from a Yjs client or a peer node.

        The returned ops (tagged ``origin``) describe what the update did to the text; an update
        that changes nothing (e.g. a duplicate) gives no ops and ``update == b""``. Parts of an
        update whose dependencies are missing wait inside the document and are part of the
        ``update`` of the change that finally integrates them.

        Raises:
            UpdateError: the update cannot be decoded; the document is untouched.
        """

        def mutate() -> None:
            try:
                self._doc.apply_update(update)
            except ValueError as exc:
                raise UpdateError(f"malformed Yjs update: {exc}") from exc
            except BaseException as exc:
                # A Rust panic surfaces as pyo3's PanicException, a BaseException that would
                # slip past ``except Exception`` handlers; report it as a bad update instead.
                if type(exc).__name__ == "PanicException":
                    raise UpdateError(f"Yjs update rejected by pycrdt: {exc}") from exc
                raise

        return self._transact(mutate, self._pieces(), origin)

    # --- internals --------------------------------------------------------------------------

    def _pieces(self) -> list[Piece]:
        """The current text as pycrdt indexes it (see :mod:`crdt.delta`)."""
        if len(self._text) == utf8_length(self._content):
            return [self._content]
        return [chunk if isinstance(chunk, str) else None for chunk, _ in self._text.diff()]

    def _transact(
        self, mutate: Callable[[], None], pieces: Sequence[Piece], origin: OpOrigin
    ) -> Change:
        """Run ``mutate`` (one transaction) and describe what it did."""
        before = self._content
        updates: list[bytes] = []
        deltas: list[list[Mapping[str, Any]]] = []

        def on_transaction(event: TransactionEvent) -> None:
            updates.append(event.update)

        def on_text(event: Any) -> None:  # a TextEvent; pycrdt does not declare its attributes
            deltas.append(event.delta)

        # Subscribed per call: a permanent Doc observer would keep the Doc alive forever (pycrdt
        # closes a reference cycle through Rust that Python's garbage collector cannot see).
        doc_subscription = self._doc.observe(on_transaction)
        text_subscription = self._text.observe(on_text)
        try:
            mutate()
        finally:
            self._doc.unobserve(doc_subscription)
            self._text.unobserve(text_subscription)
            if updates or deltas:
                self._content = str(self._text)
                self._length16 = None
        after = self._content
        update = updates[0] if len(updates) == 1 else merge_updates(*updates) if updates else b""
        if update == EMPTY_UPDATE:
            update = b""
        ops = changes_to_ops(pieces, deltas, before, after, origin) if before != after else []
        return Change(update=update, ops=ops, content_before=before, content_after=after)

    def __repr__(self) -> str:
        return f"<PromptDocument client_id={self.client_id} length16={self.utf16_length}>"
