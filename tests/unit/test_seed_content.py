"""Validates the seed content shipped in ``storage/seed`` (templates and techniques).

The files are loaded exactly as ``prompt-studio db seed`` loads them: through
``importlib.resources`` from the ``storage.seed`` package. Every check here guards a
property the seeder or the UI relies on, so a content regression fails the suite.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources
from typing import Any

import pytest

SEED_PACKAGE = "storage.seed"

MIN_TEMPLATES = 16
MIN_TEMPLATE_CATEGORIES = 5
MIN_TECHNIQUES = 14
MIN_COMMON_MISTAKES = 2

TEMPLATE_FIELDS = frozenset(
    {"key", "name", "description", "category", "tags", "sections", "default_variables"}
)
SECTION_FIELDS = frozenset({"system", "developer", "user", "context"})
VARIABLE_FIELDS = frozenset({"id", "name", "value"})
TECHNIQUE_FIELDS = frozenset(
    {"key", "title", "description", "good_example", "bad_example", "common_mistakes", "snippet"}
)

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
VARIABLE_NAME = re.compile(r"[a-z][a-z0-9_]*")
PLACEHOLDER = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}")
ARABIC_LETTER = re.compile(r"[\u0600-\u06FF]")

JsonObject = dict[str, Any]


def _load(filename: str) -> list[JsonObject]:
    text = resources.files(SEED_PACKAGE).joinpath(filename).read_text(encoding="utf-8")
    data: object = json.loads(text)
    assert isinstance(data, list), f"{filename} must contain a JSON array"
    for index, item in enumerate(data):
        assert isinstance(item, dict), f"{filename}[{index}] must be a JSON object"
    return data


TEMPLATES: list[JsonObject] = _load("templates.json")
TECHNIQUES: list[JsonObject] = _load("techniques.json")


def _key_of(item: JsonObject) -> str:
    return str(item.get("key", "<missing key>"))


def _assert_text(value: object, where: str) -> str:
    assert isinstance(value, str), f"{where} must be a string, got {type(value).__name__}"
    assert value.strip(), f"{where} must not be empty"
    assert value == value.strip(), f"{where} has leading or trailing whitespace"
    return value


def _assert_slug(value: object, where: str) -> str:
    text = _assert_text(value, where)
    assert SLUG.fullmatch(text), f"{where} must be a lowercase-hyphenated slug, got {text!r}"
    return text


def _duplicates(values: list[str]) -> list[str]:
    return sorted(value for value, count in Counter(values).items() if count > 1)


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


# --------------------------------------------------------------------------- templates


def test_templates_count_and_category_spread() -> None:
    assert len(TEMPLATES) >= MIN_TEMPLATES
    categories = Counter(str(template.get("category")) for template in TEMPLATES)
    assert len(categories) >= MIN_TEMPLATE_CATEGORIES, sorted(categories)
    # No single category may dominate the catalogue.
    most_common_category, most_common_count = categories.most_common(1)[0]
    assert most_common_count <= len(TEMPLATES) // 2, most_common_category


def test_template_keys_and_names_are_unique() -> None:
    keys = [_key_of(template) for template in TEMPLATES]
    names = [str(template.get("name")).casefold() for template in TEMPLATES]
    assert not _duplicates(keys), f"duplicate template keys: {_duplicates(keys)}"
    assert not _duplicates(names), f"duplicate template names: {_duplicates(names)}"


@pytest.mark.parametrize("template", TEMPLATES, ids=_key_of)
def test_template_shape(template: JsonObject) -> None:
    where = f"template {_key_of(template)!r}"
    assert set(template) == TEMPLATE_FIELDS, f"{where}: fields {sorted(template)}"
    _assert_slug(template["key"], f"{where}.key")
    _assert_text(template["name"], f"{where}.name")
    _assert_text(template["description"], f"{where}.description")
    _assert_slug(template["category"], f"{where}.category")

    tags = template["tags"]
    assert isinstance(tags, list), f"{where}.tags must be a list"
    assert tags, f"{where}.tags must not be empty"
    tag_texts = [_assert_text(tag, f"{where}.tags[{i}]") for i, tag in enumerate(tags)]
    assert not _duplicates(tag_texts), f"{where}: duplicate tags {_duplicates(tag_texts)}"

    sections = template["sections"]
    assert isinstance(sections, dict), f"{where}.sections must be an object"
    assert set(sections) == SECTION_FIELDS, f"{where}.sections keys: {sorted(sections)}"
    for section_name, section_text in sections.items():
        _assert_text(section_text, f"{where}.sections.{section_name}")

    variables = template["default_variables"]
    assert isinstance(variables, list), f"{where}.default_variables must be a list"
    for index, variable in enumerate(variables):
        var_where = f"{where}.default_variables[{index}]"
        assert isinstance(variable, dict), f"{var_where} must be an object"
        assert set(variable) == VARIABLE_FIELDS, f"{var_where}: fields {sorted(variable)}"
        name = _assert_text(variable["name"], f"{var_where}.name")
        assert VARIABLE_NAME.fullmatch(name), f"{var_where}.name must be snake_case: {name!r}"
        variable_id = _assert_text(variable["id"], f"{var_where}.id")
        assert variable_id.startswith("var_"), f"{var_where}.id must start with 'var_'"
        _assert_text(variable["value"], f"{var_where}.value")


@pytest.mark.parametrize("template", TEMPLATES, ids=_key_of)
def test_template_variable_ids_and_names_are_unique(template: JsonObject) -> None:
    variables: list[JsonObject] = template["default_variables"]
    ids = [str(variable["id"]) for variable in variables]
    names = [str(variable["name"]) for variable in variables]
    assert not _duplicates(ids), f"{_key_of(template)}: duplicate variable ids {_duplicates(ids)}"
    assert not _duplicates(names), (
        f"{_key_of(template)}: duplicate variable names {_duplicates(names)}"
    )


@pytest.mark.parametrize("template", TEMPLATES, ids=_key_of)
def test_template_placeholders_match_default_variables(template: JsonObject) -> None:
    sections: dict[str, str] = template["sections"]
    used: set[str] = set()
    for section_name, text in sections.items():
        used |= _placeholders(text)
        # Anything brace-like left after removing well-formed placeholders is a typo
        # such as "{{ name }}", "{{name}" or "{name}}" that the renderer would not substitute.
        leftover = PLACEHOLDER.sub("", text)
        assert "{{" not in leftover, f"{_key_of(template)}.{section_name}: malformed '{{{{'"
        assert "}}" not in leftover, f"{_key_of(template)}.{section_name}: malformed '}}}}'"

    declared = {str(variable["name"]) for variable in template["default_variables"]}
    assert used - declared == set(), f"{_key_of(template)}: placeholders without a variable"
    assert declared - used == set(), f"{_key_of(template)}: variables never used in sections"
    assert _placeholders(sections["user"]), f"{_key_of(template)}: user section has no variable"


@pytest.mark.parametrize("template", TEMPLATES, ids=_key_of)
def test_default_values_do_not_contain_placeholders(template: JsonObject) -> None:
    for variable in template["default_variables"]:
        value = str(variable["value"])
        assert "{{" not in value, f"{_key_of(template)}.{variable['name']}: nested placeholder"
        assert "}}" not in value, f"{_key_of(template)}.{variable['name']}: nested placeholder"


def test_catalogue_includes_an_arabic_english_translation_template() -> None:
    def is_translation(template: JsonObject) -> bool:
        sections: dict[str, str] = template["sections"]
        values = " ".join(str(variable["value"]) for variable in template["default_variables"])
        text = " ".join([*sections.values(), values, str(template["description"])])
        return "translat" in text.casefold() and "arabic" in text.casefold()

    translation_templates = [template for template in TEMPLATES if is_translation(template)]
    assert translation_templates, "expected an Arabic <-> English translation template"
    assert any(
        ARABIC_LETTER.search(str(variable["value"]))
        for template in translation_templates
        for variable in template["default_variables"]
    ), "the translation template should ship Arabic sample content (e.g. its glossary)"


# --------------------------------------------------------------------------- techniques


def test_techniques_count() -> None:
    assert len(TECHNIQUES) >= MIN_TECHNIQUES


def test_technique_keys_and_titles_are_unique() -> None:
    keys = [_key_of(technique) for technique in TECHNIQUES]
    titles = [str(technique.get("title")).casefold() for technique in TECHNIQUES]
    assert not _duplicates(keys), f"duplicate technique keys: {_duplicates(keys)}"
    assert not _duplicates(titles), f"duplicate technique titles: {_duplicates(titles)}"


@pytest.mark.parametrize("technique", TECHNIQUES, ids=_key_of)
def test_technique_shape(technique: JsonObject) -> None:
    where = f"technique {_key_of(technique)!r}"
    assert set(technique) == TECHNIQUE_FIELDS, f"{where}: fields {sorted(technique)}"
    _assert_slug(technique["key"], f"{where}.key")
    _assert_text(technique["title"], f"{where}.title")
    _assert_text(technique["description"], f"{where}.description")
    good = _assert_text(technique["good_example"], f"{where}.good_example")
    bad = _assert_text(technique["bad_example"], f"{where}.bad_example")
    assert good != bad, f"{where}: good and bad examples are identical"

    mistakes = technique["common_mistakes"]
    assert isinstance(mistakes, list), f"{where}.common_mistakes must be a list"
    assert len(mistakes) >= MIN_COMMON_MISTAKES, f"{where}: needs {MIN_COMMON_MISTAKES}+ mistakes"
    texts = [_assert_text(m, f"{where}.common_mistakes[{i}]") for i, m in enumerate(mistakes)]
    assert not _duplicates(texts), f"{where}: duplicate common mistakes"

    snippet = technique["snippet"]
    if snippet is not None:
        _assert_text(snippet, f"{where}.snippet")


def test_some_techniques_ship_a_snippet() -> None:
    with_snippet = [technique for technique in TECHNIQUES if technique.get("snippet") is not None]
    assert len(with_snippet) >= len(TECHNIQUES) // 2
