"""JSON clients (transformed ops) and Yjs replicas (CRDT updates) editing one document."""

from __future__ import annotations

import random

import pytest

from crdt.document import PromptDocument
from crdt.ops import EditOp, transform_through
from crdt.positions import index_to_utf16
from crdt.replay import replay
from tests.unit.test_crdt_transform import random_op, random_text, reference


@pytest.mark.parametrize("seed", range(3))
def test_json_op_against_an_old_revision_converges_with_yjs_edits(seed: int) -> None:
    """A Yjs replica edits; meanwhile a JSON client edits the old text. Everyone converges on
    the text the reference model predicts, whatever the mix of scripts."""
    rng = random.Random(seed)
    for _ in range(300):
        base = random_text(rng, 10)
        server = PromptDocument.from_text(base, client_id=1)
        yjs = PromptDocument.from_state(server.full_state(), client_id=2)
        json_op = random_op(rng, base)
        applied_ops: list[EditOp] = []
        for _ in range(rng.randint(1, 3)):
            yjs_op = random_op(rng, yjs.text)
            if yjs_op is None:
                continue
            change = server.apply_update(yjs.apply_op(yjs_op).update)
            applied_ops.extend(change.ops)
        if json_op is None:
            continue
        assert replay(base, applied_ops) == server.text == yjs.text
        transformed = transform_through(json_op, applied_ops)
        if transformed is not None:
            yjs.apply_update(server.apply_op(transformed).update)
        assert server.text == yjs.text == reference(base, applied_ops, json_op)


@pytest.mark.parametrize("seed", range(3))
def test_concurrent_replicas_converge(seed: int) -> None:
    """Two Yjs replicas edit concurrently, then exchange updates (pure CRDT merge)."""
    rng = random.Random(seed)
    for _ in range(300):
        base = random_text(rng, 10)
        left = PromptDocument.from_text(base, client_id=1)
        right = PromptDocument.from_state(left.full_state(), client_id=2)
        left_ops = [op for op in (random_op(rng, base),) if op]
        right_ops = [op for op in (random_op(rng, base),) if op]
        left_updates = [left.apply_op(op).update for op in left_ops]
        right_updates = [right.apply_op(op).update for op in right_ops]
        for update in right_updates:
            change = left.apply_update(update)
            assert replay(change.content_before, change.ops) == change.content_after
        for update in left_updates:
            change = right.apply_update(update)
            assert replay(change.content_before, change.ops) == change.content_after
        assert left.text == right.text
        for op in left_ops + right_ops:
            assert op.content in left.text  # concurrent inserts are never lost or interleaved


def test_three_replicas_with_a_json_client() -> None:
    server = PromptDocument.from_text("Tell me about 😀 مرحبا", client_id=1)
    alice = PromptDocument.from_state(server.full_state(), client_id=2)
    bob = PromptDocument.from_state(server.full_state(), client_id=3)
    json_client_text = server.text  # the JSON client saw revision 0
    history: list[EditOp] = []
    for replica, op in [
        (alice, EditOp("insert", 0, 0, "Please ")),
        (bob, EditOp("replace", 14, 2, "🎉")),
    ]:
        change = server.apply_update(replica.apply_op(op).update)
        history.extend(change.ops)
    json_op = EditOp("insert", index_to_utf16(json_client_text, len(json_client_text)), 0, "!")
    transformed = transform_through(json_op, history)
    assert transformed is not None
    final = server.apply_op(transformed)
    for replica in (alice, bob):
        replica.apply_update(server.encode_state_as_update(replica.state_vector()))
        assert replica.text == final.content_after == "Please Tell me about 🎉 مرحبا!"
