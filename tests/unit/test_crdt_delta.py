"""pycrdt deltas (byte counts, embeds) to UTF-16 ops, and UTF-16 positions to pycrdt indices."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
from pycrdt import Array, Doc, Text

from crdt.delta import (
    DeltaMismatchError,
    changes_to_ops,
    delta_to_ops,
    diff_to_ops,
    utf16_to_crdt_index,
)
from crdt.diff import diff_to_op
from crdt.document import PromptDocument
from crdt.ops import EditOp


def replay(text: str, ops: list[EditOp]) -> str:
    for op in ops:
        text = op.apply(text)
    return text


def test_delta_in_bytes_becomes_utf16_ops() -> None:
    before = "é😀b"
    delta: list[dict[str, Any]] = [
        {"retain": 6},
        {"insert": "X"},
        {"delete": 1},
    ]  # é = 2 bytes, 😀 = 4 bytes
    ops = delta_to_ops([before], delta, "é😀X", "sync")
    assert ops == [EditOp("replace", 3, 1, "X", "sync")]


def test_separate_edits_stay_separate() -> None:
    before = "a😀bcd"
    delta: list[dict[str, Any]] = [
        {"delete": 1},
        {"retain": 5},
        {"insert": "é"},
        {"retain": 1},
        {"delete": 1},
    ]
    after = "😀béc"
    ops = delta_to_ops([before], delta, after, "sync")
    assert ops == [
        EditOp("delete", 0, 1, "", "sync"),
        EditOp("insert", 3, 0, "é", "sync"),
        EditOp("delete", 5, 1, "", "sync"),
    ]
    assert replay(before, ops) == after


def test_insert_then_delete_at_one_point_is_a_replace() -> None:
    ops = delta_to_ops(["abc"], [{"retain": 1}, {"insert": "Z"}, {"delete": 1}], "aZc", "user")
    assert ops == [EditOp("replace", 1, 1, "Z", "user")]


def test_attributes_and_format_only_changes_are_ignored() -> None:
    delta: list[dict[str, Any]] = [
        {"retain": 2, "attributes": {"bold": True}},
        {"insert": "x", "attributes": {"bold": True}},
    ]
    assert delta_to_ops(["abc"], delta, "abxc", "sync") == [EditOp("insert", 2, 0, "x", "sync")]
    assert delta_to_ops(["abc"], [{"retain": 3, "attributes": {"i": 1}}], "abc", "sync") == []


def test_embeds_count_one_unit_and_no_text() -> None:
    pieces = ["ab", None, "😀c"]  # pycrdt indices: a=0 b=1 embed=2 😀=3..6 c=7
    delta: list[dict[str, Any]] = [
        {"retain": 3},
        {"delete": 4},
        {"insert": {"image": "x"}},
        {"retain": 1},
    ]
    assert delta_to_ops(pieces, delta, "abc", "sync") == [EditOp("delete", 2, 2, "", "sync")]
    assert utf16_to_crdt_index(pieces, 2) == 2  # before the embed
    assert utf16_to_crdt_index(pieces, 4) == 7
    assert utf16_to_crdt_index(pieces, 5) == 8


@pytest.mark.parametrize(
    ("delta", "after"),
    [
        ([{"retain": 10}], "abc"),  # past the end
        ([{"retain": 1}], "abc!"),  # does not produce the new text
        ([{"retain": 2}, {"delete": 1}], "é"),  # inside a character
        ([{"move": 1}], "abc"),
        ([{"retain": -1}], "abc"),
    ],
)
def test_mismatching_delta(delta: list[dict[str, Any]], after: str) -> None:
    before = "é😀" if after == "é" else "abc"
    with pytest.raises(DeltaMismatchError):
        delta_to_ops([before], delta, after, "sync")


def test_mismatch_falls_back_to_a_diff(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crdt.delta"):
        ops = changes_to_ops(["abc"], [[{"retain": 99}]], "abc", "aXc", "sync")
    assert ops == [EditOp("replace", 1, 1, "X", "sync")]
    assert "did not fit" in caplog.text


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("same", "same", []),
        ("a😀b", "a😀Xb", [EditOp("insert", 3, 0, "X", "sync")]),
        ("a😀b", "ab", [EditOp("delete", 1, 2, "", "sync")]),
        ("😀😀", "😀🎉", [EditOp("replace", 2, 2, "🎉", "sync")]),
        ("aaa", "aa", [EditOp("delete", 2, 1, "", "sync")]),
        ("", "x", [EditOp("insert", 0, 0, "x", "sync")]),
    ],
)
def test_diff_to_ops(before: str, after: str, expected: list[EditOp]) -> None:
    assert diff_to_ops(before, after, "sync") == expected
    assert replay(before, expected) == after


def test_diff_to_op_for_restore() -> None:
    assert diff_to_op("a😀b", "a🎉b", origin="undo") == EditOp("replace", 1, 2, "🎉", "undo")
    assert diff_to_op("same", "same") is None
    with pytest.raises(ValueError):
        diff_to_op("a", "b", origin="robot")  # type: ignore[arg-type]


def test_embed_from_a_rich_text_client() -> None:
    server = PromptDocument.from_text("ab😀c", client_id=1)
    client: Doc[Text] = Doc(client_id=2)
    client.apply_update(server.full_state())
    text = client.get("content", type=Text)
    updates: list[bytes] = []
    subscription = client.observe(lambda event: updates.append(event.update))
    text.insert_embed(2, {"image": "cat.png"})
    client.unobserve(subscription)
    change = server.apply_update(updates[0])
    assert change.ops == [] and change.update and server.text == "ab😀c"
    # A JSON op after the embed lands where the JSON client meant it.
    after_embed = server.apply_op(EditOp("insert", 4, 0, "X"))
    client.apply_update(after_embed.update)
    assert str(text) == "ab😀Xc"
    deleted = server.apply_op(EditOp("delete", 1, 3, ""))
    client.apply_update(deleted.update)
    assert server.text == str(text) == "aXc"


def test_non_text_items_smuggled_into_the_text_still_give_exact_ops() -> None:
    server = PromptDocument.from_text("abc", client_id=1)
    intruder: Doc[Array[int]] = Doc(client_id=3)
    intruder["content"] = items = Array[int]()
    items.extend([1, 2])
    server.apply_update(intruder.get_update())
    assert server.text == "abc"
    peer = PromptDocument.from_state(server.full_state(), client_id=2)
    for op in [EditOp("insert", 3, 0, "Z"), EditOp("delete", 0, 1, "")]:
        change = server.apply_update(peer.apply_op(op).update)
        assert replay(change.content_before, change.ops) == change.content_after == peer.text


@pytest.mark.parametrize("seed", range(3))
def test_random_updates_replay_exactly(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = ["a", "é", "😀", "م", "\u0301", " ", "🎉"]
    server = PromptDocument.from_text("héllo 😀 مرحبا", client_id=1)
    peer = PromptDocument.from_state(server.full_state(), client_id=2)
    for _ in range(150):
        updates = []
        for _ in range(rng.randint(1, 4)):
            text = peer.text
            index = rng.randint(0, len(text))
            stop = rng.randint(index, min(len(text), index + 3))
            content = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3)))
            position = len(text[:index].encode("utf-16-le")) // 2
            length = len(text[index:stop].encode("utf-16-le")) // 2
            op = EditOp.build(position, length, content)
            if op is not None:
                updates.append(peer.apply_op(op).update)
        for update in updates:
            change = server.apply_update(update)
            assert replay(change.content_before, change.ops) == change.content_after
        assert server.text == peer.text
