"""``python -m loadtest.bench_edit_size``: per-edit cost against document size.

For documents of 1 KB, 100 KB and 1 MB (ASCII text, fragmented by 200 earlier inserts at random
positions, as a document that has been edited), times one-character edits at random positions:

* ``apply_op`` — a JSON op through :meth:`PromptDocument.apply_op`;
* ``apply_update`` — a peer's Yjs update through :meth:`PromptDocument.apply_update` (text
  delta read, ops described: a room with JSON clients);
* ``integrate_update`` — the same through :meth:`PromptDocument.integrate_update` (a room with
  only Yjs clients);
* ``raw delta`` — pycrdt alone: ``Doc.apply_update`` with the text observer reading
  ``event.delta``.

Each figure is the median of ``--edits`` edits (µs per edit). A per-edit cost that grows with
the document shows as a figure growing from row to row.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from pycrdt import Doc, Text

from crdt.document import TEXT_NAME, PromptDocument
from crdt.ops import EditOp

SIZES = (1_000, 100_000, 1_000_000)


def fragmented_state(size: int, seed: int) -> bytes:
    """A document of ``size`` ASCII characters, edited 200 times at random positions."""
    rng = random.Random(seed)
    document = PromptDocument.from_text("x" * (size - 200), client_id=1)
    for _ in range(200):
        document.apply_op(EditOp("insert", rng.randint(0, document.utf16_length), 0, "y"))
    return document.full_state()


def peer_updates(state: bytes, count: int, seed: int) -> list[bytes]:
    """``count`` one-character inserts by another replica, each as its own update."""
    rng = random.Random(seed)
    peer = PromptDocument.from_state(state, client_id=2)
    return [
        peer.apply_op(EditOp("insert", rng.randint(0, peer.utf16_length), 0, "z")).update
        for _ in range(count)
    ]


def median_us(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1e6


def time_each(count: int, run: Callable[[int], object]) -> float:
    samples = []
    for index in range(count):
        start = time.perf_counter()
        run(index)
        samples.append(time.perf_counter() - start)
    return median_us(samples)


def measure(size: int, edits: int, seed: int) -> dict[str, float]:
    """Median µs per edit of each path at ``size`` characters."""
    state = fragmented_state(size, seed)
    updates = peer_updates(state, edits, seed + 1)
    rng = random.Random(seed + 2)
    results: dict[str, float] = {}

    document = PromptDocument.from_state(state, client_id=3)
    results["apply_op"] = time_each(
        edits,
        lambda _i: document.apply_op(
            EditOp("insert", rng.randint(0, document.utf16_length), 0, "w")
        ),
    )
    document = PromptDocument.from_state(state, client_id=3)
    results["apply_update"] = time_each(edits, lambda i: document.apply_update(updates[i]))
    document = PromptDocument.from_state(state, client_id=3)
    results["integrate_update"] = time_each(edits, lambda i: document.integrate_update(updates[i]))

    doc: Doc[Any] = Doc(client_id=3)
    text = doc.get(TEXT_NAME, type=Text)
    doc.apply_update(state)
    sink: list[Any] = []
    subscription = text.integrated.observe(lambda event: sink.append(event.delta))
    results["raw delta"] = time_each(edits, lambda i: doc.apply_update(updates[i]))
    del subscription
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table (µs per edit, median) for each size."""
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_edit_size", description=__doc__)
    parser.add_argument("--edits", type=int, default=200, help="edits timed per size and path")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not 1 <= args.edits <= 100_000:
        parser.error("--edits must be within 1..100000")
    columns = ("apply_op", "apply_update", "integrate_update", "raw delta")
    print(f"{'size':>10} " + " ".join(f"{c:>17}" for c in columns))
    for size in SIZES:
        row = measure(size, args.edits, args.seed)
        print(f"{size:>10} " + " ".join(f"{row[c]:>15.1f}µs" for c in columns), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
