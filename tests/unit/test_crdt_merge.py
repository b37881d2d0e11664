"""Merging updates and snapshots."""

from __future__ import annotations

import pytest

from crdt import EditOp, PromptDocument, UpdateError
from crdt.merge import document_from_log, fold_updates, merge_updates


def test_merge_updates_equals_applying_each() -> None:
    doc = PromptDocument.from_text("ab")
    replica = PromptDocument.from_state(doc.full_state())
    updates = [doc.apply_op(EditOp("insert", 2, 0, c)).update for c in "cdé😀"]
    merged = merge_updates(updates)
    assert replica.apply_update(merged).content_after == doc.text == "ab😀édc"
    assert merge_updates([merged]) == merged
    with pytest.raises(UpdateError):
        merge_updates([b"\x05garbage", b"\x01"])


def test_fold_updates_applies_a_log_to_a_snapshot() -> None:
    origin = PromptDocument.from_text("shared")
    snapshot = origin.full_state()
    a = PromptDocument.from_state(snapshot)
    b = PromptDocument.from_state(snapshot)
    log = [a.apply_op(EditOp("insert", 0, 0, "A:")).update]
    log.append(b.apply_op(EditOp("insert", 6, 0, " (B)")).update)
    log.append(log[0])  # a duplicate changes nothing
    state, text = fold_updates(snapshot, log)
    assert text == "A:shared (B)"
    assert PromptDocument.from_state(state).text == text
    assert fold_updates(None, [snapshot])[1] == "shared"
    assert fold_updates(None, [])[1] == ""


def test_a_log_is_read_back_the_same_whatever_the_order_of_its_rows() -> None:
    writer = PromptDocument.from_text("x")
    snapshot = writer.full_state()
    log = [writer.apply_op(EditOp("insert", n, 0, str(n))).update for n in range(1, 30)]
    # Rows out of order (each depends on the one before): merged in one pass, or one by one.
    shuffled = log[1::2] + log[0::2]
    assert document_from_log(snapshot, shuffled).text == writer.text
    assert document_from_log(None, [snapshot, *log]).text == writer.text
    assert document_from_log(None, []).text == ""


def test_a_log_with_an_undecodable_row_is_refused() -> None:
    snapshot = PromptDocument.from_text("x").full_state()
    with pytest.raises(UpdateError):
        document_from_log(snapshot, [b"\x05garbage"])
