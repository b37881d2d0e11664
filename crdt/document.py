"""The collaborative prompt document: a pycrdt ``Doc`` holding one ``Text`` named "content".

Every change, whether a JSON op or a Yjs update, goes through one pycrdt transaction and comes
back as a :class:`Change`: the Yjs update to broadcast, the equivalent UTF-16 ops, and the text
before and after. Methods are synchronous and not thread-safe; the caller serializes access.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Text, merge_updates

from crdt.delta import (
    DeltaMismatchError,
    Piece,
    apply_delta,
    changes_to_ops,
    utf16_to_crdt_index,
)
from crdt.errors import OpError, ProtocolError, UpdateError
from crdt.ops import EditOp, OpOrigin
from crdt.positions import utf8_length, utf16_length, utf16_to_index
from crdt.pycrdt_raw import is_rust_panic, observe_text_raw, observe_transactions_raw
from crdt.update_header import read_state_vector, read_update_ranges

__all__ = ["EMPTY_UPDATE", "TEXT_NAME", "Change", "PromptDocument"]

TEXT_NAME = "content"
"""Name of the root ``Text`` that holds the prompt (Yjs clients use ``doc.getText("content")``)."""

EMPTY_UPDATE = b"\x00\x00"
"""The encoding of a Yjs update that contains nothing."""

DEFAULT_MAX_WAITING_UPDATES = 256
"""Default bound on updates waiting for a clock gap to be filled, per document."""


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

    def __init__(
        self, *, client_id: int | None = None, max_waiting: int = DEFAULT_MAX_WAITING_UPDATES
    ) -> None:
        """Create an empty document (``client_id`` is random unless given, e.g. in tests).

        ``max_waiting`` bounds the updates held back for a clock gap (see :meth:`apply_update`).
        """
        self._doc: Doc[Text] = Doc(client_id=client_id)
        # Updates that skip clocks of some client, held here (not in pycrdt, see
        # ``_gap_of``) until an update fills the gap; oldest first.
        self._waiting: list[bytes] = []
        self._max_waiting = max_waiting
        # Client ids of the documents of the other nodes serving this one (see
        # :meth:`note_peer_server_id`): their structs reach us only from those nodes.
        self._peer_ids: set[int] = set()
        self._text = self._doc.get(TEXT_NAME, type=Text)
        # Caches of the text, kept up to date by every change (see ``_transact``):
        self._content = ""
        self._length16: int | None = 0  # UTF-16 units of ``_content``, None until needed
        self._length8 = 0  # UTF-8 bytes of ``_content``
        self._plain = True  # pycrdt indexes the text like ``_content``: no embeds in it
        # Set by :meth:`integrate_update`: the caches are behind pycrdt until the next read.
        self._stale = False
        self._recorder = recorder = _Recorder()
        # Raw (Rust-level) observers, subscribed for the document's lifetime: pycrdt's own
        # ``Doc.observe`` would keep the Doc alive forever (its wrapper refers to the Doc, closing
        # a reference cycle through Rust that Python's garbage collector cannot see), and its
        # ``Text.observe`` wrapper costs more than the change. The callbacks refer only to the
        # recorder, so the Doc is freed with this object.
        self._subscriptions = (
            observe_transactions_raw(self._doc, recorder.on_transaction),
            observe_text_raw(self._text, recorder.on_text),
        )

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
        # Our own persisted state may hold structs under ``client_id``: no own-id check here.
        document._transact(lambda: document._apply_raw(state), None, "sync")
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
        if self._stale:
            self._reload()
        return self._content

    @property
    def utf16_length(self) -> int:
        """Length of the text in UTF-16 code units (JavaScript's ``text.length``)."""
        if self._stale:
            self._reload()
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
        self._check_cache()
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
        first, last = _str_indices(before, op.position, op.end, total)
        pieces: list[Piece] | None
        if self._plain:
            pieces = None
            if before.isascii():
                start, stop = first, last
            else:  # count the shorter side
                if first <= len(before) - first:
                    start = utf8_length(before[:first])
                else:
                    start = self._length8 - utf8_length(before[first:])
                stop = start + utf8_length(before[first:last])
        else:
            pieces = self._pieces()
            start = utf16_to_crdt_index(pieces, op.position)
            stop = utf16_to_crdt_index(pieces, op.end) if op.length else start

        def mutate() -> None:
            with self._doc.transaction():
                if stop > start:
                    del self._text[start:stop]
                if op.content:
                    self._text.insert(start, op.content)

        if pieces is not None:
            return self._transact(mutate, pieces, op.origin)
        # Plain text: the transaction deletes exactly ``before[first:last]`` and inserts the
        # content there, so the outcome is known without asking pycrdt for a delta.
        after = before[:first] + op.content + before[last:]
        ops: list[EditOp] = []
        if after != before:
            built = EditOp.build(op.position, op.length, op.content, op.origin)
            ops = [] if built is None else [built]
        expected = (after, ops, utf8_length(op.content) - (stop - start))
        return self._transact(mutate, None, op.origin, expected=expected)

    def apply_update(self, update: bytes, origin: OpOrigin = "sync") -> Change:
        """Apply a Yjs update from a Yjs client or a peer node.

        The returned ops (tagged ``origin``) describe what the update did to the text; an update
        that changes nothing (e.g. a duplicate) gives no ops and ``update == b""``. Parts of an
        update whose dependencies are missing wait inside the document and are part of the
        ``update`` of the change that finally integrates them.

        An update that writes under this document's own client id (new structs, or deletions
        of clocks it has not written yet) is refused: only this replica writes there (see
        :meth:`refuse_own_writes`). With ``origin="user"`` (a client's update, not a peer
        node's) the same holds for the client ids of the other nodes' documents.

        Raises:
            UpdateError: the update cannot be decoded, or writes under this document's client
                id; the document is untouched.
        """
        if self._hold_if_gapped(update, from_client=origin == "user"):
            return Change(update=b"", ops=[], content_before=self.text, content_after=self.text)
        self._check_cache()
        return self._transact(
            lambda: self._apply_and_release(update),
            None if self._plain else self._pieces(),
            origin,
        )

    def integrate_update(self, update: bytes) -> tuple[bytes, bool]:
        """Apply a Yjs update without describing it: (the integrated update, text changed?).

        For updates nobody needs as ops (a peer node's change in a room without JSON clients):
        it skips pycrdt's text delta, which walks the whole text. The text is re-read lazily,
        on the next read or change. The integrated update is ``b""`` when nothing was new.

        Raises:
            UpdateError: as for :meth:`apply_update`; the document is untouched.
        """
        if self._hold_if_gapped(update):
            return b"", False
        recorder = self._recorder
        if recorder.updates or recorder.changed:  # edited behind our back: re-read later
            recorder.take()
            self._stale = True
        recorder.want_delta = False
        try:
            self._apply_and_release(update)
        finally:
            updates, _deltas, changed = recorder.take()
            if changed or updates:
                self._stale = True
        merged = updates[0] if len(updates) == 1 else merge_updates(*updates) if updates else b""
        return (b"" if merged == EMPTY_UPDATE else merged), changed

    def refuse_own_writes(self, update: bytes) -> None:
        """Raise :class:`UpdateError` if ``update`` writes under this document's client id.

        That is a struct or a deletion beyond the clocks this replica has written itself: only
        it writes there, and nobody else could ever fill such a gap. At or below them it is a
        duplicate of our own change (e.g. a peer node's sync reply) and harmless. Costs one pass
        over ``update``, no pycrdt call.

        Raises:
            UpdateError: the update is malformed, or writes under our client id.
        """
        self._check_update(update)

    def note_peer_server_id(self, client_id: int) -> None:
        """Record the client id another node's replica of this document writes under.

        A client's update (``origin="user"``) may not write there: only that node does, and
        its relay would refuse such structs, leaving it and us with different documents.
        """
        if client_id != self._doc.client_id:
            self._peer_ids.add(client_id)

    def _check_update(self, update: bytes, *, from_client: bool = False) -> bool:
        """:meth:`refuse_own_writes` (for the peers' ids too if ``from_client``), then whether
        ``update`` skips clocks of some client."""
        own = self._doc.client_id
        guarded = {own, *self._peer_ids} if from_client and self._peer_ids else {own}
        ranges = read_update_ranges(update)
        if not ranges.structs and all(r.client not in guarded for r in ranges.deletes):
            return False
        state = self._state_map()
        for claimed in (*ranges.structs, *ranges.deletes):
            have = state.get(claimed.client, 0)
            if claimed.client in guarded and claimed.end > have:
                whose = "the server's own" if claimed.client == own else "another server's"
                raise UpdateError(
                    f"update writes clocks {claimed.start}..{claimed.end} under {whose} "
                    f"client id {claimed.client} (written up to {have}); refused"
                )
        return any(group.start > state.get(group.client, 0) for group in ranges.structs)

    def _hold_if_gapped(self, update: bytes, *, from_client: bool = False) -> bool:
        """Keep ``update`` aside if it skips clocks; refuse it if it writes under our id.

        pycrdt does not hold a struct that skips clocks pending as Yjs does: when its origins
        are known it integrates it without advancing its state vector, so the text changes but
        the transaction's update is empty and no peer ever gets it (found by the fuzz suite).
        Such an update therefore waits here, outside pycrdt, until the gap is filled.

        Raises:
            UpdateError: as for :meth:`refuse_own_writes`, or too many updates are waiting.
        """
        if not self._check_update(update, from_client=from_client):
            return False
        if len(self._waiting) >= self._max_waiting:
            raise UpdateError(
                f"{len(self._waiting)} updates already wait for missing clocks; refused"
            )
        self._waiting.append(bytes(update))
        return True

    def _apply_and_release(self, update: bytes) -> None:
        """Apply ``update``, then every waiting update whose gap it filled (same transaction
        as far as the caller is concerned: the recorder collects them all)."""
        self._apply_raw(update)
        progress = bool(self._waiting)
        while progress:
            progress = False
            for waiting in list(self._waiting):
                try:
                    gapped = self._check_update(waiting)
                except UpdateError:  # e.g. it overlaps what we have written since
                    self._waiting.remove(waiting)
                    continue
                if not gapped:
                    self._waiting.remove(waiting)
                    # Its failure must not fail ``update``, which is applied already.
                    with suppress(UpdateError):
                        self._apply_raw(waiting)
                    progress = True

    @property
    def waiting_updates(self) -> int:
        """How many updates wait for a clock gap to be filled."""
        return len(self._waiting)

    @property
    def max_waiting_updates(self) -> int:
        """The bound on :attr:`waiting_updates`; beyond it a gapped update is refused."""
        return self._max_waiting

    @max_waiting_updates.setter
    def max_waiting_updates(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"max_waiting_updates must be >= 1, got {value}")
        self._max_waiting = value

    def _state_map(self) -> dict[int, int]:
        """This document's state vector: per client id, the number of clocks it has."""
        return read_state_vector(self._doc.get_state())

    def _apply_raw(self, update: bytes) -> None:
        try:
            self._doc.apply_update(update)
        except ValueError as exc:
            raise UpdateError(f"malformed Yjs update: {exc}") from exc
        except BaseException as exc:
            # A Rust panic surfaces as pyo3's PanicException, a BaseException that would
            # slip past ``except Exception`` handlers; report it as a bad update instead.
            if is_rust_panic(exc):
                raise UpdateError(f"Yjs update rejected by pycrdt: {exc}") from exc
            raise

    # --- internals --------------------------------------------------------------------------

    def _pieces(self) -> list[Piece]:
        """The current text as pycrdt indexes it, embeds included (see :mod:`crdt.delta`)."""
        return [chunk if isinstance(chunk, str) else None for chunk, _ in self._text.diff()]

    def _check_cache(self) -> None:
        """Re-read the text if it changed outside this class's methods (only tests do that), or
        after :meth:`integrate_update`."""
        recorder = self._recorder
        if recorder.updates or recorder.changed:
            recorder.take()
            self._reload()
        elif self._stale:
            self._reload()

    def _reload(self) -> None:
        """Rebuild the caches from pycrdt (the slow way: it rebuilds the whole string)."""
        self._stale = False
        self._content = content = str(self._text)
        self._length8 = utf8_length(content)
        self._length16 = None
        self._plain = len(self._text) == self._length8

    def _transact(
        self,
        mutate: Callable[[], None],
        pieces: Sequence[Piece] | None,
        origin: OpOrigin,
        *,
        expected: tuple[str, list[EditOp], int] | None = None,
    ) -> Change:
        """Run ``mutate`` (one transaction) and describe what it did.

        ``pieces`` is the text before as pycrdt indexes it, ``None`` for plain text (then
        ``[content]``). ``expected`` is the outcome the caller predicts for plain text: the new
        text, its ops and the change of pycrdt's length; without it, plain text is updated from
        the transaction's delta. Either way pycrdt's length must agree, or the text is re-read
        from pycrdt and described as before this fast path existed (delta, else diff).
        """
        before = self._content
        recorder = self._recorder
        recorder.want_delta = pieces is not None or expected is None
        try:
            mutate()
        except BaseException:
            updates, deltas, changed = recorder.take()
            if updates or changed:
                self._reload()
            raise
        updates, deltas, changed = recorder.take()
        update = updates[0] if len(updates) == 1 else merge_updates(*updates) if updates else b""
        if update == EMPTY_UPDATE:
            update = b""
        if not updates and not changed:
            return Change(update=update, ops=[], content_before=before, content_after=before)

        outcome: tuple[str, list[EditOp], int] | None = None
        if pieces is None:  # plain text: no need to rebuild the whole string
            if not changed:  # e.g. an update for another root type
                outcome = (before, [], 0)
            elif expected is not None:
                outcome = expected
            elif len(deltas) == 1:
                # A delta that does not fit (e.g. it inserts an embed) is described below.
                with suppress(DeltaMismatchError):
                    outcome = apply_delta(
                        before, deltas[0], origin, size8=self._length8, size16=self._length16
                    )
        if outcome is not None and len(self._text) == self._length8 + outcome[2]:
            after, ops, growth = outcome
            if after == before:
                ops = []
            elif self._length16 is not None:
                self._length16 += sum(utf16_length(op.content) - op.length for op in ops)
            self._content = after
            self._length8 += growth
        else:
            self._reload()
            after = self._content
            if before == after:
                ops = []
            else:
                ops = changes_to_ops(
                    [before] if pieces is None else pieces, deltas, before, after, origin
                )
        return Change(update=update, ops=ops, content_before=before, content_after=after)

    def __repr__(self) -> str:
        return f"<PromptDocument client_id={self.client_id} length16={self.utf16_length}>"


def _str_indices(text: str, start16: int, stop16: int, length16: int) -> tuple[int, int]:
    """The ``str`` indices of two UTF-16 offsets into ``text`` (``length16`` units long).

    Like :func:`~crdt.positions.utf16_to_index` for each (the same ``OpError`` if one splits a
    surrogate pair), with one encoding of the text and one decoding of the shorter side.
    ``0 <= start16 <= stop16 <= length16`` must hold.
    """
    if length16 == len(text):  # no surrogate pairs: UTF-16 offsets are str indices
        return start16, stop16
    units = text.encode("utf-16-le", "surrogatepass")
    for pos16, field in ((start16, "position"), (stop16, "length")):
        if 0 < pos16 < length16:
            previous = int.from_bytes(units[2 * pos16 - 2 : 2 * pos16], "little")
            following = int.from_bytes(units[2 * pos16 : 2 * pos16 + 2], "little")
            if 0xD800 <= previous <= 0xDBFF and 0xDC00 <= following <= 0xDFFF:
                utf16_to_index(text, pos16, field=field)  # raises the error it describes
    if start16 <= length16 - start16:
        first = len(units[: 2 * start16].decode("utf-16-le", "surrogatepass"))
    else:
        first = len(text) - len(units[2 * start16 :].decode("utf-16-le", "surrogatepass"))
    span = units[2 * start16 : 2 * stop16].decode("utf-16-le", "surrogatepass")
    return first, first + len(span)


class _Recorder:
    """Collects what a transaction did, for :class:`PromptDocument` (see its ``__init__``).

    ``on_text`` reads the text delta only when ``want_delta`` is set: pycrdt computes it by
    walking every item of the text, which costs far more than applying a small update.
    """

    __slots__ = ("changed", "deltas", "updates", "want_delta")

    def __init__(self) -> None:
        self.updates: list[bytes] = []
        self.deltas: list[list[Mapping[str, Any]]] = []
        self.changed = False
        self.want_delta = False

    def on_transaction(self, event: Any) -> None:  # a Rust TransactionEvent
        self.updates.append(event.update)

    def on_text(self, event: Any) -> None:  # a Rust TextEvent, readable only during the call
        self.changed = True
        if self.want_delta:
            self.deltas.append(event.delta)

    def take(self) -> tuple[list[bytes], list[list[Mapping[str, Any]]], bool]:
        """What was recorded since the last call (updates, text deltas, text changed?)."""
        recorded = (self.updates, self.deltas, self.changed)
        self.updates, self.deltas, self.changed, self.want_delta = [], [], False, False
        return recorded
