"""Load-test markers: found whole, never split by a later insert, and counted by Yjs clocks."""

from __future__ import annotations

import random

import pytest
from pycrdt import Doc, Text

from loadtest.markers import (
    EditClocks,
    decode_state_vector,
    find_markers,
    marker,
    outside_markers,
    yjs_client_id,
)


def test_markers_round_trip_in_text() -> None:
    text = "x" + marker(3, 41) + "y" + marker(12, 7)
    assert find_markers(text) == [(3, 41), (12, 7)]


def test_positions_inside_a_marker_move_past_it() -> None:
    text = "ab[c1e2]cd[c3e4]"
    assert [outside_markers(text, p) for p in range(len(text) + 1)] == [
        0,
        1,
        2,
        8,
        8,
        8,
        8,
        8,
        8,
        9,
        10,
        16,
        16,
        16,
        16,
        16,
        16,
    ]


def test_random_inserts_through_outside_markers_never_split_a_marker() -> None:
    rng = random.Random(7)
    text = ""
    for seq in range(500):
        position = outside_markers(text, rng.randint(0, len(text)))
        text = text[:position] + marker(seq % 5, seq) + text[position:]
    assert sorted(s for _, s in find_markers(text)) == list(range(500))


def test_a_receivers_state_vector_counts_each_authors_integrated_edits_once() -> None:
    authors = {a: Doc(client_id=yjs_client_id(a)) for a in (0, 7, 123)}
    receiver: Doc[Text] = Doc(client_id=yjs_client_id(999))
    receiver["content"] = Text()
    clocks = EditClocks()
    rng = random.Random(3)
    counts = {a: 0 for a in authors}
    seen: list[tuple[int, int]] = []
    for doc in authors.values():
        doc["content"] = Text()
    for step in range(300):
        author = rng.choice(list(authors))
        doc = authors[author]
        before = doc.get_state()
        text = doc["content"]
        text.insert(rng.randint(0, len(text)), marker(author, counts[author]))
        counts[author] += 1
        receiver.apply_update(doc.get_update(before))
        if step % 7 == 0:  # the receiver looks now and then: several edits arrive at once
            for yjs_client, clock in decode_state_vector(receiver.get_state()).items():
                seen.extend((yjs_client - 1, seq) for seq in clocks.covered(yjs_client - 1, clock))
    for yjs_client, clock in decode_state_vector(receiver.get_state()).items():
        seen.extend((yjs_client - 1, seq) for seq in clocks.covered(yjs_client - 1, clock))
    assert sorted(seen) == sorted((a, s) for a, n in counts.items() for s in range(n))


def test_state_vectors_decode_like_pycrdt_encodes_them() -> None:
    doc: Doc[Text] = Doc(client_id=300)
    doc["content"] = text = Text()
    assert decode_state_vector(doc.get_state()) == {}
    text.insert(0, "x" * 200)
    assert decode_state_vector(doc.get_state()) == {300: 200}
    with pytest.raises(ValueError):
        decode_state_vector(b"\x02\x01")
