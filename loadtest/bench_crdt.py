"""``python -m loadtest.bench_crdt``: micro-benchmark of :class:`crdt.document.PromptDocument`.

Builds a fragmented document like the one a loaded server holds: a pycrdt replica types 3,000
short inserts ("⟦c17⟧", non-ASCII) at random positions, so the text (~16 KB) is split into
thousands of items (``--ascii``: ASCII markers "[c17]" and ASCII ops, like the load
generator's). The server replica integrates the first 2,500 updates; the benchmark then
times the last 500 through :meth:`PromptDocument.apply_update`, and 500 JSON ops (inserts,
deletes, replaces at random positions) through :meth:`PromptDocument.apply_op`.

It also times the building blocks on plain pycrdt objects holding the same state, so the share
of each step of a change is visible:

* ``apply`` — ``Doc.apply_update`` with nothing observing;
* ``doc observer`` — the same with a raw ``Doc`` observer reading ``TransactionEvent.update``;
* ``Text.observe delta`` — pycrdt's ``Text.observe`` wrapper reading ``event.delta``;
* ``raw text delta`` — the Rust event (``text.integrated.observe``) reading ``event.delta``;
* ``str(text)`` — rebuilding the whole string, as after every change before;
* ``len(text)`` — pycrdt's length (UTF-8 bytes), the consistency guard.

``apply_update`` now costs ``apply`` + ``doc observer`` + ``raw text delta`` + ``len(text)`` +
the Python bookkeeping printed as ``rest``; the ``Text.observe`` wrapper and ``str(text)`` are
shown for comparison (the implementation before used both, and subscribed its observers per
call). Each figure is the best of ``--rounds`` rounds (µs per update or op).

Measured on a 2-core VM with pycrdt 0.14.13, before → after the fast path: apply_update
216 → 70 µs (``--ascii``: 109 → 45 µs), apply_op 365 → 56 µs (``--ascii``: 140 → 29 µs).
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from pycrdt import Doc, Text

from crdt.document import TEXT_NAME, PromptDocument
from crdt.ops import EditOp
from crdt.positions import index_to_utf16
from crdt.pycrdt_raw import observe_text_raw, observe_transactions_raw

__all__ = ["build_updates", "main"]

USED_STEPS = ("doc observer", "raw text delta", "len(text)")
"""The building blocks :meth:`PromptDocument.apply_update` pays for (besides ``apply``)."""


def build_updates(inserts: int, seed: int, *, ascii_only: bool = False) -> list[bytes]:
    """One Yjs update per insert of a short marker at a random position."""
    rng = random.Random(seed)
    source: Doc[Text] = Doc(client_id=1)
    text = source.get(TEXT_NAME, type=Text)
    updates: list[bytes] = []
    content = ""
    for i in range(inserts):
        state = source.get_state()
        index = rng.randint(0, len(content))
        marker = f"[c{i}]" if ascii_only else f"⟦c{i}⟧"
        text.insert(len(content[:index].encode("utf-8")), marker)
        content = content[:index] + marker + content[index:]
        updates.append(source.get_update(state))
    return updates


def build_ops(
    document: PromptDocument, count: int, seed: int, *, ascii_only: bool = False
) -> list[EditOp]:
    """Random valid ops, each against the text the previous ones leave (applied to a copy)."""
    rng = random.Random(seed)
    contents = ["x", "[z]", "ab "] if ascii_only else ["x", "é", "😀 ", "مرحبا", "⟦z⟧"]
    copy = PromptDocument.from_state(document.full_state(), client_id=document.client_id + 1)
    ops: list[EditOp] = []
    while len(ops) < count:
        text = copy.text
        start = rng.randint(0, len(text))
        kind = rng.choice(["insert", "insert", "delete", "replace"])
        stop = start if kind == "insert" else min(len(text), start + rng.randint(1, 8))
        content = "" if kind == "delete" else rng.choice(contents)
        position = index_to_utf16(text, start)
        op = EditOp.build(position, index_to_utf16(text, stop) - position, content)
        if op is not None:
            copy.apply_op(op)
            ops.append(op)
    return ops


def best_of(rounds: int, count: int, run: Callable[[], float]) -> float:
    """Best time per item (µs) over ``rounds`` runs of ``run`` (which returns seconds)."""
    gc.collect()
    return min(run() for _ in range(rounds)) / count * 1e6


def time_document_updates(state: bytes, updates: Sequence[bytes], rounds: int) -> float:
    def run() -> float:
        document = PromptDocument.from_state(state, client_id=99)
        started = time.perf_counter()
        for update in updates:
            document.apply_update(update)
        return time.perf_counter() - started

    return best_of(rounds, len(updates), run)


def time_document_ops(state: bytes, ops: Sequence[EditOp], rounds: int) -> float:
    def run() -> float:
        document = PromptDocument.from_state(state, client_id=99)
        started = time.perf_counter()
        for op in ops:
            document.apply_op(op)
        return time.perf_counter() - started

    return best_of(rounds, len(ops), run)


def time_pycrdt_step(state: bytes, updates: Sequence[bytes], rounds: int, step: str) -> float:
    """Time ``Doc.apply_update`` for every update with one kind of observer (see the docstring)."""

    def run() -> float:
        doc: Doc[Text] = Doc(client_id=99)
        text = doc.get(TEXT_NAME, type=Text)
        doc.apply_update(state)
        sink: list[Any] = []

        def on_delta(event: Any) -> None:  # pycrdt does not declare TextEvent.delta
            sink.append(event.delta)

        subscription: Any = None
        if step == "doc observer":
            subscription = observe_transactions_raw(doc, lambda event: sink.append(event.update))
        elif step == "Text.observe delta":
            subscription = text.observe(on_delta)
        elif step == "raw text delta":
            subscription = observe_text_raw(text, on_delta)
        started = time.perf_counter()
        for update in updates:
            doc.apply_update(update)
            if step == "str(text)":
                sink.append(str(text))
            elif step == "len(text)":
                sink.append(len(text))
        elapsed = time.perf_counter() - started
        if subscription is not None:
            subscription.drop()
        return elapsed

    return best_of(rounds, len(updates), run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_crdt", description=__doc__)
    parser.add_argument("--inserts", type=int, default=3000, help="inserts typed in total")
    parser.add_argument("--measured", type=int, default=500, help="last inserts to time")
    parser.add_argument("--rounds", type=int, default=5, help="runs per figure (best is kept)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ascii", action="store_true", help="type ASCII markers ([c17])")
    args = parser.parse_args(argv)

    updates = build_updates(args.inserts, args.seed, ascii_only=args.ascii)
    warm, measured = updates[: -args.measured], updates[-args.measured :]
    document = PromptDocument.empty(client_id=98)
    for update in warm:
        document.apply_update(update)
    state = document.full_state()
    ops = build_ops(document, args.measured, args.seed, ascii_only=args.ascii)
    print(
        f"document: {len(document.text)} chars, {len(document.text.encode())} bytes, "
        f"{len(warm)} inserts integrated; timing {len(measured)} updates and {len(ops)} ops"
    )

    apply_update = time_document_updates(state, measured, args.rounds)
    apply_op = time_document_ops(state, ops, args.rounds)
    print(f"{'PromptDocument.apply_update':<30}{apply_update:8.1f} µs/update")
    print(f"{'PromptDocument.apply_op':<30}{apply_op:8.1f} µs/op")
    print("building blocks (plain pycrdt, same state):")
    baseline = time_pycrdt_step(state, measured, args.rounds, "apply")
    print(f"  {'apply':<28}{baseline:8.1f} µs/update ({baseline / apply_update * 100:4.0f}%)")
    used = baseline
    for step in ("doc observer", "Text.observe delta", "raw text delta", "str(text)", "len(text)"):
        cost = time_pycrdt_step(state, measured, args.rounds, step) - baseline
        if step in USED_STEPS:
            used += cost
        share = f"({cost / apply_update * 100:4.0f}%)" if step in USED_STEPS else "(not used)"
        print(f"  {'+ ' + step:<28}{cost:8.1f} µs/update {share}")
    rest = apply_update - used
    label = "rest (Python bookkeeping)"
    print(f"  {label:<28}{rest:8.1f} µs/update ({rest / apply_update * 100:4.0f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
