"""UTF-16 / UTF-8 / code-point position conversions."""

from __future__ import annotations

import time

import pytest

from crdt.errors import OpError
from crdt.positions import (
    index_to_utf16,
    utf8_length,
    utf8_to_utf16,
    utf16_length,
    utf16_slice,
    utf16_to_index,
    utf16_to_utf8,
)

ARABIC = "مرحبا بالعالم"
COMBINING = "e\u0301te\u0301"  # "été" spelled with combining acute accents


@pytest.mark.parametrize(
    ("text", "units16", "bytes8"),
    [
        ("", 0, 0),
        ("hello", 5, 5),
        ("héllo", 5, 6),
        ("😀", 2, 4),
        ("a😀b", 4, 6),
        (ARABIC, 13, 25),
        (COMBINING, 5, 7),
        ("👍🏽", 4, 8),  # emoji + skin-tone modifier: two astral code points
    ],
)
def test_lengths(text: str, units16: int, bytes8: int) -> None:
    assert utf16_length(text) == units16
    assert utf8_length(text) == bytes8


def test_round_trip_every_boundary() -> None:
    text = "aé😀م\u0301🎉 z"
    for index in range(len(text) + 1):
        pos16 = index_to_utf16(text, index)
        assert utf16_to_index(text, pos16) == index
        pos8 = utf16_to_utf8(text, pos16)
        assert pos8 == len(text[:index].encode())
        assert utf8_to_utf16(text, pos8) == pos16


def test_emoji_offsets() -> None:
    text = "a😀b"
    assert utf16_to_index(text, 3) == 2
    assert utf16_to_utf8(text, 3) == 5
    assert utf16_slice(text, 1, 3) == "😀"


def test_arabic_and_accents_have_no_surrogates() -> None:
    assert utf16_to_index(ARABIC, 5) == 5
    assert utf16_to_utf8(ARABIC, 5) == 10
    assert utf16_to_utf8("héllo", 2) == 3


def test_inside_surrogate_pair_is_out_of_range() -> None:
    with pytest.raises(OpError) as info:
        utf16_to_index("a😀b", 2)
    assert info.value.code == "out_of_range"
    assert info.value.field == "position"
    assert "surrogate" in info.value.message


def test_field_is_reported() -> None:
    with pytest.raises(OpError) as info:
        utf16_to_utf8("😀", 1, field="length")
    assert info.value.field == "length"


@pytest.mark.parametrize("pos16", [-1, 6, 100])
def test_outside_the_text_is_out_of_range(pos16: int) -> None:
    with pytest.raises(OpError) as info:
        utf16_to_index("héllo", pos16)
    assert info.value.code == "out_of_range"


def test_ascii_fast_path_checks_the_end() -> None:
    with pytest.raises(OpError):
        utf16_to_index("abc", 4)
    assert utf16_to_index("abc", 3) == 3


@pytest.mark.parametrize("pos8", [1, 2, 3])
def test_utf8_offset_inside_a_character(pos8: int) -> None:
    with pytest.raises(OpError):
        utf8_to_utf16("😀", pos8)


def test_utf8_offset_past_the_end() -> None:
    with pytest.raises(OpError):
        utf8_to_utf16("é", 3)
    with pytest.raises(OpError):
        utf8_to_utf16("ab", 3)


def test_index_outside() -> None:
    with pytest.raises(OpError):
        index_to_utf16("ab", 3)


def test_slice_end_before_start() -> None:
    with pytest.raises(OpError):
        utf16_slice("abc", 2, 1)


def test_long_text_is_fast() -> None:
    text = ("prompt é 😀 مرحبا " * 6000)[:100_000]
    end = utf16_length(text)
    middle = index_to_utf16(text, len(text) // 2)
    started = time.perf_counter()
    for _ in range(200):
        utf16_to_utf8(text, end)
        utf16_to_index(text, middle)
    assert time.perf_counter() - started < 2.0  # ~ms each; a per-char Python loop takes far more
