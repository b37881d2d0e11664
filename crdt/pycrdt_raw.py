"""The parts of pycrdt below its public API that :mod:`crdt.document` relies on, in one place.

pycrdt's own ``Doc.observe`` and ``Text.observe`` wrap every event in Python objects (and the
``Doc.observe`` wrapper keeps the Doc alive through a reference cycle the garbage collector
cannot see), so the document subscribes to the Rust objects underneath instead:

- ``Doc._doc`` is the Rust ``Doc``; its ``observe(callback)`` calls back with a
  ``TransactionEvent`` whose ``update`` is the transaction's Yjs update (``bytes``);
- ``Text.integrated`` is the Rust ``Text``; its ``observe(callback)`` calls back with a
  ``TextEvent`` whose ``delta`` is a list of ``{"insert": str}``, ``{"delete": n}`` and
  ``{"retain": n}`` in pycrdt's index units (UTF-8 bytes, one per embed);
- both return a ``Subscription`` that unsubscribes when dropped (keep it as long as the
  callback is wanted; ``drop()`` ends it at once);
- a Rust panic surfaces as pyo3's ``PanicException``, a ``BaseException`` that is not an
  ``Exception``, and cannot be imported (it lives in the unregistered ``pyo3_runtime`` module).

``tests/unit/test_dependency_guards.py`` checks each of these against the installed pycrdt; the
version range is pinned in ``pyproject.toml``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Text

__all__ = ["is_rust_panic", "observe_text_raw", "observe_transactions_raw"]

Subscription = Any
"""pycrdt's Rust ``Subscription`` (undeclared in its typing): dropping it unsubscribes."""


def observe_transactions_raw(doc: Doc[Any], callback: Callable[[Any], None]) -> Subscription:
    """Call ``callback(event)`` after each transaction on ``doc`` (``event.update``: bytes)."""
    return doc._doc.observe(callback)


def observe_text_raw(text: Text, callback: Callable[[Any], None]) -> Subscription:
    """Call ``callback(event)`` for each change of ``text`` (``event.delta``, readable only
    during the call)."""
    return text.integrated.observe(callback)


def is_rust_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a panic inside pycrdt's Rust code (pyo3's ``PanicException``)."""
    return type(exc).__name__ == "PanicException"
