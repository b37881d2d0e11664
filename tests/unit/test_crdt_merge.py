"""Merging updates and snapshots."""

from __future__ import annotations

import pytest

from crdt import EditOp, PromptDocument, UpdateError
from crdt.merge import merge_states, merge_updates


def test_merge_updates_equals_applying_each() -> None:
    doc = PromptDocument.from_text("ab")
    replica = PromptDocument.from_state(doc.full_state())
    updates = [doc.apply_op(EditOp("insert", 2, 0, c)).update for c in "cdé😀"]
    merged = merge_updates(updates)
    assert replica.apply_update(merged).content_after == doc.text == "ab😀édc"
    assert merge_updates([merged]) == merged
    with pytest.raises(UpdateError):
        merge_updates([b"\x05garbage", b"\x01"])


def test_merge_states_keeps_changes_from_both_sides() -> None:
    origin = PromptDocument.from_text("shared")
    a = PromptDocument.from_state(origin.full_state())
    b = PromptDocument.from_state(origin.full_state())
    a.apply_op(EditOp("insert", 0, 0, "A:"))
    b.apply_op(EditOp("insert", 6, 0, " (B)"))
    # b's copy lacks a's change; merging into what a stored must keep both.
    state, text = merge_states(a.full_state(), b.full_state())
    assert text == "A:shared (B)"
    assert PromptDocument.from_state(state).text == text
    assert merge_states(None, b.full_state())[1] == "shared (B)"
