"""Operational transform of JSON ops, checked by hand and against a reference model."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from crdt.ops import EditOp, transform, transform_through
from crdt.positions import index_to_utf16, utf16_to_index

ALPHABET = ["a", "b", "c", " ", "é", "ü", "😀", "🎉", "م", "ر", "ح", "\u0301", "👍"]


def ins(position: int, content: str) -> EditOp:
    return EditOp("insert", position, 0, content)


def dele(position: int, length: int) -> EditOp:
    return EditOp("delete", position, length, "")


def rep(position: int, length: int, content: str) -> EditOp:
    return EditOp("replace", position, length, content)


def merged(base: str, applied: list[EditOp], op: EditOp) -> str:
    text = base
    for a in applied:
        text = a.apply(text)
    result = transform_through(op, applied)
    return text if result is None else result.apply(text)


# --- hand-checked cases ---------------------------------------------------------------------


def test_insert_after_a_concurrent_insert_shifts() -> None:
    assert transform(ins(5, "X"), ins(2, "ab")) == ins(7, "X")
    assert transform(ins(1, "X"), ins(2, "ab")) == ins(1, "X")


def test_same_position_applied_insert_stays_first() -> None:
    assert transform(ins(2, "X"), ins(2, "ab")) == ins(4, "X")
    assert merged("0123", [ins(2, "ab")], ins(2, "X")) == "01abX23"


def test_positions_count_utf16() -> None:
    assert transform(ins(3, "X"), ins(0, "😀")) == ins(5, "X")
    assert merged("a😀b", [ins(0, "😀")], ins(3, "!")) == "😀a😀!b"


def test_delete_shifts_and_shrinks() -> None:
    assert transform(dele(5, 2), ins(0, "ab")) == dele(7, 2)
    assert transform(dele(2, 4), dele(4, 4)) == dele(2, 2)  # overlap at the end
    assert transform(dele(4, 4), dele(2, 4)) == dele(2, 2)  # overlap at the start
    assert transform(dele(6, 2), dele(0, 3)) == dele(3, 2)


def test_deleting_already_deleted_text_is_nothing() -> None:
    assert transform(dele(2, 2), dele(1, 5)) is None
    assert transform(dele(2, 2), dele(2, 2)) is None


def test_insert_inside_a_deleted_range_lands_at_the_deletion_point() -> None:
    assert transform(ins(4, "X"), dele(2, 5)) == ins(2, "X")
    assert merged("0123456789", [dele(2, 5)], ins(4, "X")) == "01X789"


def test_insert_inside_a_replaced_range_lands_after_the_replacement() -> None:
    assert transform(ins(4, "X"), rep(2, 5, "ab")) == ins(4, "X")
    assert merged("0123456789", [rep(2, 5, "ab")], ins(4, "X")) == "01abX789"


def test_replace_over_a_concurrent_delete() -> None:
    assert transform(rep(2, 4, "Z"), dele(3, 5)) == rep(2, 1, "Z")
    assert merged("0123456789", [dele(3, 5)], rep(2, 4, "Z")) == "01Z89"


def test_replace_of_already_deleted_text_becomes_an_insert() -> None:
    assert transform(rep(3, 2, "Z"), dele(2, 5)) == ins(2, "Z")


def test_delete_around_a_concurrent_insert_keeps_the_insert() -> None:
    assert merged("0123456789", [ins(5, "X")], dele(2, 6)) == "01X89"
    assert merged("0123456789", [ins(5, "X")], rep(2, 6, "Y")) == "01YX89"


def test_delete_ending_at_a_concurrent_insert_keeps_it() -> None:
    assert transform(dele(2, 3), ins(5, "X")) == dele(2, 3)
    assert transform(dele(2, 3), ins(2, "X")) == dele(3, 3)


def test_origin_is_kept() -> None:
    op = EditOp("delete", 5, 1, "", "undo")
    result = transform(op, ins(0, "a"))
    assert result is not None and result.origin == "undo"


def test_no_applied_ops_returns_the_op_itself() -> None:
    op = EditOp("replace", 1, 0, "x")
    assert transform_through(op, []) is op


def test_chained_ops_do_not_resurrect_concurrently_deleted_text() -> None:
    # A inserts X inside the client's deleted range, then C deletes X again.
    assert merged("0123456789", [ins(5, "X"), dele(5, 1)], dele(2, 6)) == "0189"


# --- randomized comparison with a reference model ---------------------------------------------


@dataclass
class _Item:
    char: str
    base: int | None  # index in the base text; None for text inserted by an applied op
    deleted: bool = False


def _visible(items: list[_Item]) -> list[int]:
    return [k for k, item in enumerate(items) if not item.deleted]


def reference(base: str, applied: list[EditOp], op: EditOp) -> str:
    """What the text must be: every op's deletions and insertions, each at its own anchor.

    Deleted characters stay as tombstones, so the client op (written against ``base``) can be
    anchored to base characters. An applied insert goes right after the visible character
    before it (ahead of any tombstones); the client's content goes right before the base
    character at its position, i.e. after applied inserts at the same place.
    """
    items = [_Item(char, index) for index, char in enumerate(base)]
    for a in applied:
        visible = _visible(items)
        text = "".join(items[k].char for k in visible)
        start = utf16_to_index(text, a.position)
        stop = utf16_to_index(text, a.end)
        for k in visible[start:stop]:
            items[k].deleted = True
        at = 0 if start == 0 else visible[start - 1] + 1
        items[at:at] = [_Item(char, None) for char in a.content]
    start = utf16_to_index(base, op.position)
    stop = utf16_to_index(base, op.end)
    for item in items:
        if item.base is not None and start <= item.base < stop:
            item.deleted = True
    anchor = next((k for k, item in enumerate(items) if item.base == start), len(items))
    items[anchor:anchor] = [_Item(char, None) for char in op.content]
    return "".join(item.char for item in items if not item.deleted)


def random_text(rng: random.Random, max_len: int = 12) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, max_len)))


def random_op(rng: random.Random, text: str) -> EditOp | None:
    """A random valid op against ``text`` (positions on code-point boundaries)."""
    kind = rng.choice(["insert", "delete", "replace"])
    if kind != "insert" and not text:
        kind = "insert"
    start = rng.randint(0, len(text))
    stop = start if kind == "insert" else rng.randint(start, len(text))
    content = "" if kind == "delete" else random_text(rng, 4) or "x"
    position = index_to_utf16(text, start)
    return EditOp.build(position, index_to_utf16(text, stop) - position, content)


@pytest.mark.parametrize("seed", range(4))
def test_transform_matches_the_reference_model(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1500):
        base = random_text(rng)
        op = random_op(rng, base)
        applied: list[EditOp] = []
        text = base
        for _ in range(rng.randint(1, 3)):
            a = random_op(rng, text)
            if a is not None:
                applied.append(a)
                text = a.apply(text)
        if op is None:
            continue
        expected = reference(base, applied, op)
        assert merged(base, applied, op) == expected, (base, applied, op)


def test_both_intents_survive_one_concurrent_op() -> None:
    rng = random.Random(99)
    for _ in range(2000):
        base = random_text(rng)
        a, b = random_op(rng, base), random_op(rng, base)
        if a is None or b is None:
            continue
        result = merged(base, [a], b)
        assert b.content in result
        assert a.content in result
