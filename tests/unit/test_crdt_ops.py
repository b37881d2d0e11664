"""EditOp and the validation of client JSON ops."""

from __future__ import annotations

from typing import Any

import pytest

from crdt.errors import OpError
from crdt.ops import EditOp, parse_op


def test_parse_insert() -> None:
    op = parse_op({"type": "insert", "position": 3, "content": "😀"})
    assert op == EditOp("insert", 3, 0, "😀", "user")


def test_parse_delete_and_replace_with_origin() -> None:
    assert parse_op({"type": "delete", "position": 0, "length": 2, "origin": "undo"}) == EditOp(
        "delete", 0, 2, "", "undo"
    )
    assert parse_op(
        {"type": "replace", "position": 1, "length": 0, "content": "x", "origin": "redo"}
    ) == EditOp("replace", 1, 0, "x", "redo")
    assert parse_op({"type": "replace", "position": 1, "length": 2, "content": ""}) == EditOp(
        "replace", 1, 2, "", "user"
    )


def test_parse_accepts_explicit_zero_length_insert_and_empty_delete_content() -> None:
    assert parse_op({"type": "insert", "position": 0, "length": 0, "content": "a"}).length == 0
    assert parse_op({"type": "delete", "position": 0, "length": 1, "content": ""}).content == ""


def test_parse_ignores_unknown_keys() -> None:
    op = parse_op({"type": "insert", "position": 0, "content": "a", "id": "x1", "rev": 4})
    assert op.content == "a"


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (None, None),
        ([], None),
        ("insert", None),
        ({}, "type"),
        ({"type": "move", "position": 0}, "type"),
        ({"type": 1, "position": 0}, "type"),
        ({"type": "insert", "content": "a"}, "position"),
        ({"type": "insert", "position": -1, "content": "a"}, "position"),
        ({"type": "insert", "position": 1.0, "content": "a"}, "position"),
        ({"type": "insert", "position": "1", "content": "a"}, "position"),
        ({"type": "insert", "position": True, "content": "a"}, "position"),
        ({"type": "insert", "position": None, "content": "a"}, "position"),
        ({"type": "insert", "position": 0}, "content"),
        ({"type": "insert", "position": 0, "content": ""}, "content"),
        ({"type": "insert", "position": 0, "content": 5}, "content"),
        ({"type": "insert", "position": 0, "content": None}, "content"),
        ({"type": "insert", "position": 0, "content": "a", "length": 2}, "length"),
        ({"type": "insert", "position": 0, "content": "a", "length": False}, "length"),
        ({"type": "insert", "position": 0, "content": "\ud83d"}, "content"),
        ({"type": "delete", "position": 0}, "length"),
        ({"type": "delete", "position": 0, "length": 0}, "length"),
        ({"type": "delete", "position": 0, "length": -2}, "length"),
        ({"type": "delete", "position": 0, "length": 2.5}, "length"),
        ({"type": "delete", "position": 0, "length": "2"}, "length"),
        ({"type": "delete", "position": 0, "length": True}, "length"),
        ({"type": "delete", "position": 0, "length": 1, "content": "x"}, "content"),
        ({"type": "delete", "position": 0, "length": 1, "content": None}, "content"),
        ({"type": "replace", "position": 0, "content": "x"}, "length"),
        ({"type": "replace", "position": 0, "length": 1}, "content"),
        ({"type": "replace", "position": 0, "length": 0, "content": ""}, "content"),
        ({"type": "replace", "position": 0, "length": 1, "content": ["x"]}, "content"),
        ({"type": "insert", "position": 0, "content": "a", "origin": "sync"}, "origin"),
        ({"type": "insert", "position": 0, "content": "a", "origin": "admin"}, "origin"),
        ({"type": "insert", "position": 0, "content": "a", "origin": None}, "origin"),
    ],
)
def test_parse_rejects(obj: Any, field: str | None) -> None:
    with pytest.raises(OpError) as info:
        parse_op(obj)
    assert info.value.code == "invalid_op"
    assert info.value.field == field
    assert info.value.message


def test_parse_rejects_oversized_content() -> None:
    with pytest.raises(OpError) as info:
        parse_op({"type": "insert", "position": 0, "content": "abcd"}, max_content_chars=3)
    assert (info.value.code, info.value.field) == ("too_large", "content")
    assert parse_op({"type": "insert", "position": 0, "content": "abc"}, max_content_chars=3)


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (
            EditOp("insert", 2, 0, "é"),
            {"type": "insert", "position": 2, "content": "é", "origin": "user"},
        ),
        (
            EditOp("delete", 2, 3, "", "undo"),
            {"type": "delete", "position": 2, "length": 3, "origin": "undo"},
        ),
        (
            EditOp("replace", 0, 1, "😀", "sync"),
            {"type": "replace", "position": 0, "length": 1, "content": "😀", "origin": "sync"},
        ),
    ],
)
def test_to_json(op: EditOp, expected: dict[str, object]) -> None:
    assert op.to_json() == expected
    if op.origin != "sync":
        assert parse_op(op.to_json()) == op


@pytest.mark.parametrize(
    "args",
    [
        ("insert", 0, 1, "a"),
        ("insert", 0, 0, ""),
        ("delete", 0, 0, ""),
        ("delete", 0, 1, "a"),
        ("replace", 0, 0, ""),
        ("insert", -1, 0, "a"),
    ],
)
def test_edit_op_invariants(args: tuple[Any, int, int, str]) -> None:
    with pytest.raises(ValueError):
        EditOp(*args)


def test_build_derives_the_type() -> None:
    assert EditOp.build(1, 0, "a") == EditOp("insert", 1, 0, "a")
    assert EditOp.build(1, 2, "") == EditOp("delete", 1, 2, "")
    assert EditOp.build(1, 2, "a", "sync") == EditOp("replace", 1, 2, "a", "sync")
    assert EditOp.build(1, 0, "") is None


def test_apply_counts_utf16() -> None:
    assert EditOp("replace", 1, 2, "o").apply("a😀b") == "aob"
    assert EditOp("insert", 3, 0, "!").apply("a😀b") == "a😀!b"
    with pytest.raises(OpError):
        EditOp("delete", 1, 1, "").apply("a😀b")
    with pytest.raises(OpError):
        EditOp("delete", 3, 2, "").apply("a😀b")
