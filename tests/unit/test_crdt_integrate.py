"""integrate_update: applying a peer's update without describing it, then reading lazily."""

from __future__ import annotations

import random

import pytest

from crdt import EditOp, PromptDocument, UpdateError


def replica_updates(seed: int, count: int) -> tuple[bytes, list[bytes]]:
    rng = random.Random(seed)
    origin = PromptDocument.from_text("base مرحبا 😀")
    writers = [PromptDocument.from_state(origin.full_state()) for _ in range(2)]
    updates = []
    for _ in range(count):
        writer = rng.choice(writers)
        text = writer.text
        index = rng.randint(0, len(text))  # a str index never splits an emoji
        position = len(text[:index].encode("utf-16-le")) // 2
        if rng.random() < 0.7 or index == len(text):
            content = rng.choice(["a", "é", "😀", "سلام"])
            change = writer.apply_op(EditOp("insert", position, 0, content))
        else:
            removed = text[index : index + rng.randint(1, 3)]
            length = len(removed.encode("utf-16-le")) // 2
            change = writer.apply_op(EditOp("delete", position, length))
        updates.append(change.update)
        other = writers[1] if writer is writers[0] else writers[0]
        if rng.random() < 0.5:
            other.apply_update(change.update)
    return origin.full_state(), updates


@pytest.mark.parametrize("seed", range(5))
def test_integrating_quietly_ends_where_describing_does(seed: int) -> None:
    start, updates = replica_updates(seed, 120)
    quiet = PromptDocument.from_state(start)
    loud = PromptDocument.from_state(start)
    rng = random.Random(seed)
    for update in updates:
        if rng.random() < 0.6:
            integrated, _changed = quiet.integrate_update(update)
        else:
            integrated = quiet.apply_update(update).update
        described = loud.apply_update(update).update
        assert bool(integrated) == bool(described)
        if rng.random() < 0.2:  # reads in between are served from a refreshed cache
            assert quiet.text == loud.text
    assert quiet.text == loud.text
    assert quiet.utf16_length == loud.utf16_length
    assert PromptDocument.from_state(quiet.full_state()).text == loud.text
    # A described change after quiet ones starts from the right text.
    change = quiet.apply_op(EditOp("insert", 0, 0, ">"))
    assert change.content_before == loud.text and change.content_after == ">" + loud.text


def test_a_duplicate_integrates_nothing_and_garbage_is_refused() -> None:
    start, updates = replica_updates(1, 5)
    document = PromptDocument.from_state(start)
    first, changed = document.integrate_update(updates[0])
    assert first and changed
    assert document.integrate_update(updates[0]) == (b"", False)
    before = document.text
    with pytest.raises(UpdateError):
        document.integrate_update(b"\x01\x02garbage")
    assert document.text == before
