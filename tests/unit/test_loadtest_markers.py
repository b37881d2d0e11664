"""Load-test markers: found whole, and never split by a later insert."""

from __future__ import annotations

import random

from loadtest.markers import find_marker_bytes, find_markers, marker, outside_markers


def test_markers_round_trip_in_text_and_bytes() -> None:
    text = "x" + marker(3, 41) + "y" + marker(12, 7)
    assert find_markers(text) == [(3, 41), (12, 7)]
    assert find_marker_bytes(text.encode()) == [(3, 41), (12, 7)]


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
