"""PromptDocument's fast path (no whole-text rebuild, no per-call observers) against the
straightforward implementation it replaced: every change must be described identically."""

from __future__ import annotations

import gc
import random
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pycrdt import Array, Doc, Text, TransactionEvent, merge_updates

from crdt import delta as delta_module
from crdt.delta import (
    DeltaMismatchError,
    Piece,
    apply_delta,
    changes_to_ops,
    delta_to_ops,
    utf16_to_crdt_index,
)
from crdt.document import EMPTY_UPDATE, TEXT_NAME, Change, PromptDocument
from crdt.errors import OpError, UpdateError
from crdt.ops import EditOp, OpOrigin
from crdt.positions import index_to_utf16, utf8_length, utf16_length, utf16_to_index

# Emoji (surrogate pairs, ZWJ sequences, skin tones), Arabic, combining marks, accents.
ALPHABET = [
    "a",
    "b",
    " ",
    "é",
    "ü",
    "😀",
    "🎉",
    "👍🏽",
    "👩‍💻",
    "م",
    "ر",
    "ح",
    "\u0301",
    "\u064e",
    "e\u0301",
]


class ReferenceDocument:
    """The implementation before the fast path: observers subscribed per call, the text rebuilt
    with ``str(text)`` after every change, ops from the delta (else a diff)."""

    def __init__(self, client_id: int) -> None:
        self.doc: Doc[Text] = Doc(client_id=client_id)
        self.text = self.doc.get(TEXT_NAME, type=Text)
        self.content = ""

    def pieces(self) -> list[Piece]:
        if len(self.text) == utf8_length(self.content):
            return [self.content]
        return [chunk if isinstance(chunk, str) else None for chunk, _ in self.text.diff()]

    def transact(self, mutate: Callable[[], None], pieces: list[Piece], origin: OpOrigin) -> Change:
        before = self.content
        updates: list[bytes] = []
        deltas: list[list[Mapping[str, Any]]] = []

        def on_transaction(event: TransactionEvent) -> None:
            updates.append(event.update)

        def on_text(event: Any) -> None:
            deltas.append(event.delta)

        doc_subscription = self.doc.observe(on_transaction)
        text_subscription = self.text.observe(on_text)
        try:
            mutate()
        finally:
            self.doc.unobserve(doc_subscription)
            self.text.unobserve(text_subscription)
            if updates or deltas:
                self.content = str(self.text)
        after = self.content
        update = updates[0] if len(updates) == 1 else merge_updates(*updates) if updates else b""
        if update == EMPTY_UPDATE:
            update = b""
        ops = changes_to_ops(pieces, deltas, before, after, origin) if before != after else []
        return Change(update=update, ops=ops, content_before=before, content_after=after)

    def apply_update(self, update: bytes, origin: OpOrigin = "sync") -> Change:
        def mutate() -> None:
            try:
                self.doc.apply_update(update)
            except ValueError as exc:
                raise UpdateError(str(exc)) from exc

        return self.transact(mutate, self.pieces(), origin)

    def apply_op(self, op: EditOp) -> Change:
        before = self.content
        total = utf16_length(before)
        if op.position > total:
            raise OpError("out_of_range", "past the end", "position")
        if op.end > total:
            raise OpError("out_of_range", "past the end", "length")
        utf16_to_index(before, op.position)
        utf16_to_index(before, op.end, field="length")
        pieces = self.pieces()
        start = utf16_to_crdt_index(pieces, op.position)
        stop = utf16_to_crdt_index(pieces, op.end) if op.length else start

        def mutate() -> None:
            with self.doc.transaction():
                if stop > start:
                    del self.text[start:stop]
                if op.content:
                    self.text.insert(start, op.content)

        return self.transact(mutate, pieces, op.origin)


def replay(text: str, ops: list[EditOp]) -> str:
    for op in ops:
        text = op.apply(text)
    return text


def check_caches(document: PromptDocument) -> None:
    """The caches the fast path keeps must match pycrdt's text."""
    text = str(document._text)
    assert document.text == text
    assert document._length8 == utf8_length(text)
    if document._length16 is not None:
        assert document._length16 == utf16_length(text)
    assert document.utf16_length == utf16_length(text)
    assert document._plain == (len(document._text) == utf8_length(text))


def apply_both(
    fast: PromptDocument, reference: ReferenceDocument, update: bytes, origin: OpOrigin = "sync"
) -> Change:
    change = fast.apply_update(update, origin)
    assert change == reference.apply_update(update, origin)
    assert replay(change.content_before, change.ops) == change.content_after
    assert change.content_after == str(reference.text)
    check_caches(fast)
    return change


# --- replicas ---------------------------------------------------------------------------------


class Replica:
    """A plain pycrdt replica that records the update of each of its transactions."""

    def __init__(self, client_id: int) -> None:
        self.doc: Doc[Text] = Doc(client_id=client_id)
        self.text = self.doc.get(TEXT_NAME, type=Text)
        self.outbox: list[bytes] = []
        self._subscription = self.doc.observe(lambda event: self.outbox.append(event.update))

    def close(self) -> None:
        self.doc.unobserve(self._subscription)

    def receive(self, update: bytes) -> None:
        pending = len(self.outbox)
        self.doc.apply_update(update)
        del self.outbox[pending:]  # what it integrates is not its own news

    def edit(self, rng: random.Random, *, rich: bool = False) -> None:
        """1-3 random inserts, deletes or replaces (at character boundaries) in one transaction;
        ``rich``: now and then an embed or a bold range too, like a rich-text editor."""
        with self.doc.transaction():
            for _ in range(rng.randint(1, 3)):
                text = str(self.text)
                pieces = [
                    chunk if isinstance(chunk, str) else None for chunk, _ in self.text.diff()
                ]
                start = rng.randint(0, len(text))
                kind = rng.choice(["insert", "insert", "delete", "replace"])
                stop = start if kind == "insert" else min(len(text), start + rng.randint(1, 4))
                content = (
                    "" if kind == "delete" else "".join(rng.choices(ALPHABET, k=rng.randint(1, 3)))
                )
                index = utf16_to_crdt_index(pieces, index_to_utf16(text, start))
                end = utf16_to_crdt_index(pieces, index_to_utf16(text, stop))
                if end > index:
                    del self.text[index:end]
                if content:
                    self.text.insert(index, content)
                if rich and rng.random() < 0.05:
                    self.text.insert_embed(index, {"image": "cat.png"})
                if rich and rng.random() < 0.05 and content:
                    self.text.format(index, index + utf8_length(content), {"bold": True})


def deliveries(rng: random.Random, replicas: list[Replica]) -> list[bytes]:
    """The replicas' new updates as a server may get them: one by one, merged, as a state diff,
    out of order (missing dependencies wait), sometimes twice."""
    updates: list[bytes] = []
    for replica in replicas:
        news, replica.outbox = replica.outbox, []
        if news and rng.random() < 0.2:
            news = [merge_updates(*news)]
        updates.extend(news)
    rng.shuffle(updates)
    if updates and rng.random() < 0.3:
        updates.append(rng.choice(updates))
    return updates


@pytest.mark.parametrize("seed", range(6))
def test_concurrent_replicas_are_described_like_the_reference(seed: int) -> None:
    """2-3 replicas edit concurrently; odd seeds add embeds and formatting (no longer plain
    text, so some changes take the slow path and the text must come back to the fast one)."""
    rng = random.Random(seed)
    replicas = [Replica(client_id) for client_id in range(10, 10 + rng.choice([2, 3]))]
    fast = PromptDocument(client_id=1)
    reference = ReferenceDocument(client_id=1)
    for _ in range(120):
        for replica in replicas:
            if rng.random() < 0.8:
                replica.edit(rng, rich=seed % 2 == 1)
        for update in deliveries(rng, replicas):
            apply_both(fast, reference, update, rng.choice(["sync", "user"]))
        # the replicas exchange everything now and then (pure CRDT merge of concurrent edits)
        if rng.random() < 0.5:
            state = fast.full_state()
            for replica in replicas:
                replica.receive(state)
    catch_up = merge_updates(*(replica.doc.get_update() for replica in replicas))
    apply_both(fast, reference, catch_up)
    for replica in replicas:
        replica.receive(fast.full_state())
        assert str(replica.text) == fast.text
        replica.close()


@pytest.mark.parametrize("seed", range(4))
def test_json_ops_are_described_like_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    base = "".join(rng.choices(ALPHABET, k=30))
    fast = PromptDocument.from_text(base, client_id=1)
    reference = ReferenceDocument(client_id=1)
    reference.apply_update(fast.full_state())
    peer = Replica(client_id=2)
    peer.receive(fast.full_state())
    for _ in range(300):
        if rng.random() < 0.3:  # a concurrent Yjs replica fragments the text
            peer.edit(rng)
            for update in deliveries(rng, [peer]):
                apply_both(fast, reference, update)
        text = fast.text
        position = rng.randint(0, utf16_length(text) + 1)  # sometimes splits a pair or overruns
        length = rng.choice([0, 0, 1, 2, 3, 5])
        content = "".join(rng.choices(ALPHABET, k=rng.randint(0, 3)))
        op = EditOp.build(position, length, content, rng.choice(["user", "undo"]))
        if op is None:
            continue
        try:
            expected = reference.apply_op(op)
        except OpError as error:
            with pytest.raises(OpError) as info:
                fast.apply_op(op)
            assert (info.value.code, info.value.field) == (error.code, error.field)
            check_caches(fast)
            continue
        change = fast.apply_op(op)
        assert change == expected
        assert change.content_after == str(reference.text)
        check_caches(fast)
        peer.receive(change.update)
        assert str(peer.text) == fast.text
    peer.close()


def test_out_of_range_errors_are_unchanged() -> None:
    document = PromptDocument.from_text("a😀b😀")
    with pytest.raises(OpError) as info:
        document.apply_op(EditOp("insert", 2, 0, "x"))
    assert (info.value.field, info.value.message) == (
        "position",
        "position 2 falls inside a surrogate pair (it would split a character)",
    )
    with pytest.raises(OpError) as info:
        document.apply_op(EditOp("delete", 0, 5, ""))
    assert (info.value.field, info.value.message) == (
        "length",
        "length 5 falls inside a surrogate pair (it would split a character)",
    )
    assert document.text == "a😀b😀"
    check_caches(document)


# --- text pycrdt does not describe as plain text ----------------------------------------------


def test_embeds_and_formatting_from_a_rich_text_client() -> None:
    fast = PromptDocument.from_text("héllo 😀 wörld", client_id=1)
    reference = ReferenceDocument(client_id=1)
    reference.apply_update(fast.full_state())
    client = Replica(client_id=2)
    client.receive(fast.full_state())

    def send(edit: Callable[[], None]) -> Change:
        edit()
        (update,) = client.outbox
        client.outbox.clear()
        return apply_both(fast, reference, update)

    assert send(lambda: client.text.format(1, 4, {"bold": True})).ops == []
    assert fast._plain
    assert send(lambda: client.text.insert(3, "X", {"bold": True})).ops == [
        EditOp("insert", 2, 0, "X", "sync")
    ]
    assert send(lambda: client.text.insert_embed(4, {"image": "cat.png"})).ops == []
    assert not fast._plain  # from now on the text is re-read from pycrdt, as before
    assert send(lambda: client.text.insert(0, "→")).ops == [EditOp("insert", 0, 0, "→", "sync")]
    for op in [EditOp("insert", 4, 0, "Y"), EditOp("replace", 7, 2, "😀")]:
        change = fast.apply_op(op)
        assert change == reference.apply_op(op)
        client.receive(change.update)
        assert str(client.text) == fast.text
    chunks = [chunk for chunk, _ in client.text.diff()]
    embed = next(i for i, chunk in enumerate(chunks) if not isinstance(chunk, str))
    index = sum(utf8_length(chunk) for chunk in chunks[:embed])

    def delete_the_embed() -> None:
        del client.text[index : index + 1]

    send(delete_the_embed)
    assert fast._plain  # plain again: back on the fast path
    assert send(lambda: client.text.insert(0, "!")).ops == [EditOp("insert", 0, 0, "!", "sync")]
    client.close()


def test_non_text_items_smuggled_into_the_text() -> None:
    fast = PromptDocument.from_text("abc", client_id=1)
    reference = ReferenceDocument(client_id=1)
    reference.apply_update(fast.full_state())
    intruder: Doc[Array[int]] = Doc(client_id=3)
    intruder[TEXT_NAME] = items = Array[int]()
    items.extend([1, 2])
    apply_both(fast, reference, intruder.get_update())
    assert not fast._plain
    peer = PromptDocument.from_state(fast.full_state(), client_id=2)
    for op in [EditOp("insert", 3, 0, "Z"), EditOp("delete", 0, 1, "")]:
        apply_both(fast, reference, peer.apply_op(op).update)
        assert fast.text == peer.text


def test_update_for_another_root_type_keeps_the_fast_path() -> None:
    fast = PromptDocument.from_text("abc", client_id=1)
    other: Doc[Array[int]] = Doc(client_id=9)
    other["settings"] = settings = Array[int]()
    settings.append(1)
    change = fast.apply_update(other.get_update())
    assert change.update and change.ops == [] and change.content_after == "abc"
    assert fast._plain
    check_caches(fast)


def test_a_delta_that_does_not_fit_falls_back_to_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> Any:
        raise DeltaMismatchError("refused")

    fast = PromptDocument.from_text("héllo 😀", client_id=1)
    reference = ReferenceDocument(client_id=1)
    reference.apply_update(fast.full_state())
    peer = PromptDocument.from_state(fast.full_state(), client_id=2)
    monkeypatch.setattr("crdt.document.apply_delta", refuse)
    change = apply_both(fast, reference, peer.apply_op(EditOp("replace", 1, 4, "a🎉")).update)
    assert change.ops == [EditOp("replace", 1, 4, "a🎉", "sync")]


def test_length_guard_rebuilds_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """If pycrdt's length disagrees with the predicted text, the text is re-read from pycrdt."""

    def wrong(before: str, delta: Any, origin: OpOrigin, **kwargs: Any) -> Any:
        after, ops, growth = apply_delta(before, delta, origin, **kwargs)
        return after + "?", ops, growth + 1

    fast = PromptDocument.from_text("abc", client_id=1)
    peer = PromptDocument.from_state(fast.full_state(), client_id=2)
    monkeypatch.setattr("crdt.document.apply_delta", wrong)
    change = fast.apply_update(peer.apply_op(EditOp("insert", 1, 0, "X")).update)
    assert change.content_after == fast.text == "aXbc"
    assert change.ops == [EditOp("insert", 1, 0, "X", "sync")]
    check_caches(fast)


def test_text_changed_behind_the_documents_back_is_re_read() -> None:
    document = PromptDocument.from_text("abc", client_id=1)
    document._text.insert(3, "d")  # not through PromptDocument (only tests do this)
    change = document.apply_op(EditOp("insert", 4, 0, "e"))
    assert change.content_before == "abcd"
    assert change.content_after == document.text == "abcde"
    check_caches(document)


def test_a_failed_transaction_leaves_consistent_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    document = PromptDocument.from_text("abcdef", client_id=1)

    def fail(index: int, value: str, attrs: object = None) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(document._text, "insert", fail)
    with pytest.raises(RuntimeError):
        document.apply_op(EditOp("replace", 1, 2, "X"))  # the delete already happened
    monkeypatch.undo()
    assert document.text == "adef"
    check_caches(document)
    assert document.apply_op(EditOp("insert", 4, 0, "!")).content_after == "adef!"


# --- apply_delta ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_apply_delta_matches_delta_to_ops(seed: int) -> None:
    rng = random.Random(seed)
    replica = Replica(client_id=5)
    observed: list[list[Mapping[str, Any]]] = []

    def on_text(event: Any) -> None:  # pycrdt does not declare TextEvent.delta
        observed.append(event.delta)

    subscription = replica.text.observe(on_text)
    for _ in range(300):
        before = str(replica.text)
        replica.edit(rng)
        after = str(replica.text)
        if not observed:  # e.g. a delete in an empty text
            continue
        (delta,) = observed
        observed.clear()
        expected = delta_to_ops([before], delta, after, "sync")
        growth = utf8_length(after) - utf8_length(before)
        assert apply_delta(before, delta, "sync") == (after, expected, growth)
        sizes = {"size8": utf8_length(before), "size16": utf16_length(before)}
        assert apply_delta(before, delta, "sync", **sizes) == (after, expected, growth)
    replica.text.unobserve(subscription)
    replica.close()


@pytest.mark.parametrize(
    ("before", "delta", "match"),
    [
        ("abc", [{"retain": 10}], "past the end"),
        ("é😀", [{"retain": 7}], "past the end"),
        ("é😀", [{"retain": 1}], "splits"),
        ("é😀", [{"retain": 4}], "splits"),  # counted from the end: 2 bytes of 😀 are left
        ("é😀abcdefgh", [{"retain": 4}], "splits"),  # from the start
        ("é😀", [{"delete": 2}, {"delete": 1}], "splits"),
        ("abc", [{"insert": {"image": "x"}}], "embed"),
        ("abc", [{"move": 1}], "unknown"),
        ("abc", [{"retain": -1}], "bad delta length"),
        ("abc", [{"retain": True}], "bad delta length"),
    ],
)
def test_apply_delta_rejects(before: str, delta: list[dict[str, Any]], match: str) -> None:
    for sizes in ({}, {"size8": utf8_length(before), "size16": utf16_length(before)}):
        with pytest.raises(DeltaMismatchError, match=match):
            apply_delta(before, delta, "sync", **sizes)


def test_apply_delta_counts_from_the_nearer_end() -> None:
    before = "é" * 10 + "😀" + "م" * 3
    sizes = {"size8": utf8_length(before), "size16": utf16_length(before)}
    delta: list[dict[str, Any]] = [{"retain": 24}, {"insert": "X"}, {"delete": 2}, {"retain": 4}]
    after, ops, growth = apply_delta(before, delta, "sync", **sizes)
    assert after == "é" * 10 + "😀" + "X" + "م" * 2
    assert ops == [EditOp("replace", 12, 1, "X", "sync")]
    assert growth == -1
    assert delta_module.delta_to_ops([before], delta, after, "sync") == ops


# --- observers --------------------------------------------------------------------------------


def test_permanent_observers_do_not_keep_documents_alive() -> None:
    refs: list[weakref.ref[object]] = []
    for client_id in range(1, 4):
        document = PromptDocument.from_text("héllo 😀", client_id=client_id)
        peer = PromptDocument.from_state(document.full_state(), client_id=client_id + 10)
        for i in range(5):
            peer.apply_update(document.apply_op(EditOp("insert", i, 0, "x")).update)
        refs += [weakref.ref(document._doc), weakref.ref(peer._doc), weakref.ref(document)]
        del document, peer
    gc.collect()
    assert all(ref() is None for ref in refs)


def test_no_subscription_is_added_per_call() -> None:
    document = PromptDocument.from_text("abc", client_id=1)
    peer = PromptDocument.from_state(document.full_state(), client_id=2)
    before = (len(document._doc._subscriptions), len(document._text._subscriptions))
    for i in range(10):
        peer.apply_update(document.apply_op(EditOp("insert", i, 0, "x")).update)
    assert (len(document._doc._subscriptions), len(document._text._subscriptions)) == before
