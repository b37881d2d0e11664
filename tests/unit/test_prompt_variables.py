"""``{{name}}`` placeholders: scanning, declaring, and the warnings a save reports."""

from __future__ import annotations

import pytest

from server.prompts.content import PromptContent, Variable
from server.prompts.errors import InvalidPrompt
from server.prompts.variables import (
    INVALID_PLACEHOLDER,
    UNCLOSED,
    UNDECLARED,
    UNUSED,
    declare,
    scan,
    used_names,
    warnings_for,
)


def test_scan_finds_names_in_order_of_first_use_with_optional_spaces() -> None:
    result = scan("Hi {{name}}, {{ topic }} and {{name}} again; {{_x1}}")
    assert result.names == ("name", "topic", "_x1")
    assert result.problems == ()


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("a {{name", ((UNCLOSED, 2),)),
        ("{{1abc}} x", ((INVALID_PLACEHOLDER, 0),)),
        ("{{a b}} {{ok}} {{", ((INVALID_PLACEHOLDER, 0), (UNCLOSED, 15))),
        ("{{}}", ((INVALID_PLACEHOLDER, 0),)),
        ("{{na-me}}", ((INVALID_PLACEHOLDER, 0),)),
        ("single { braces } are text", ()),
    ],
)
def test_scan_reports_malformed_placeholders(
    text: str, problems: tuple[tuple[str, int], ...]
) -> None:
    assert scan(text).problems == problems


def test_scan_of_a_long_text_without_placeholders_is_empty() -> None:
    assert scan("x" * 100_000) == scan("")


def test_declare_gives_ids_and_keeps_given_ones() -> None:
    declared = declare([{"name": "a", "value": "1", "id": "v1"}, {"name": "b"}])
    assert declared[0] == Variable("v1", "a", "1")
    assert declared[1].name == "b" and declared[1].value == "" and declared[1].id


@pytest.mark.parametrize("name", ["1abc", "", "a-b", "a b", "é", None, 5, "a{{", "a\n"])
def test_declare_refuses_an_invalid_name_naming_the_field(name: object) -> None:
    with pytest.raises(InvalidPrompt) as caught:
        declare([{"name": "ok"}, {"name": name}])
    assert caught.value.field == "variables.1.name"


def test_declare_refuses_a_repeated_name() -> None:
    with pytest.raises(InvalidPrompt, match="twice") as caught:
        declare([{"name": "a"}, {"name": "a"}])
    assert caught.value.field == "variables.1.name"


def test_warnings_name_undeclared_unused_unclosed_and_invalid() -> None:
    content = PromptContent(
        content="{{topic}} {{",
        sections={"system": "You are {{role}}.", "user": "{{ 9 }}"},
        variables=(Variable("1", "topic"), Variable("2", "unused")),
    )
    found = {(w.code, w.field, w.variable) for w in warnings_for(content)}
    assert found == {
        (UNCLOSED, "content", None),
        (UNDECLARED, "sections.system", "role"),
        (INVALID_PLACEHOLDER, "sections.user", None),
        (UNUSED, "variables.1.name", "unused"),
    }
    assert used_names(content) == ["topic", "role"]


def test_no_warnings_for_a_clean_prompt() -> None:
    content = PromptContent(sections={"user": "{{q}}"}, variables=(Variable("1", "q"),))
    assert warnings_for(content) == []
