"""The offline compose engine: sections, variables, the critic's rules, the judge's merge."""

from __future__ import annotations

import pytest

from server.compose import offline
from server.compose.models import (
    ComposeInput,
    ConverterOutput,
    CriticOutput,
    JudgeOutput,
    TechniqueRow,
    to_json,
)
from server.compose.variables import canonical_name, normalise, referenced
from storage.repositories.seed import load_seed_file

TECHNIQUES = [
    TechniqueRow(t["title"], t["description"], t.get("snippet"))
    for t in load_seed_file("techniques.json")
]


@pytest.mark.parametrize(
    ("text", "expected_text", "names"),
    [
        ("Hello {{ name }}!", "Hello {{name}}!", ["name"]),
        (
            "Write about <topic> for <target audience>.",
            "Write about {{topic}} for {{target_audience}}.",
            ["topic", "target_audience"],
        ),
        (
            "Summarise [ARTICLE] for [reader type].",
            "Summarise {{article}} for {{reader_type}}.",
            ["article", "reader_type"],
        ),
        (
            "Describe PRODUCT_NAME in CITY.",
            "Describe {{product_name}} in {{city}}.",
            ["product_name", "city"],
        ),
        (
            "Return JSON via the API, do NOT add HTML.",
            "Return JSON via the API, do NOT add HTML.",
            [],
        ),
        ("Wrap it in <email>{{body}}</email>.", "Wrap it in <email>{{body}}</email>.", ["body"]),
        (
            "See [the docs](https://x.test) and tick [x].",
            "See [the docs](https://x.test) and tick [x].",
            [],
        ),
        ("ALL CAPS LINE WITH TOPIC", "ALL CAPS LINE WITH TOPIC", []),
        ("{{a}} and <a> and [A] and A_A", "{{a}} and {{a}} and {{a}} and {{a_a}}", ["a", "a_a"]),
    ],
)
def test_placeholders_are_found_and_normalised(
    text: str, expected_text: str, names: list[str]
) -> None:
    assert normalise(text) == (expected_text, names)


def test_canonical_names_and_references() -> None:
    assert canonical_name("Customer Name") == "customer_name"
    assert canonical_name("customer-name") == "customer_name"
    assert canonical_name("  ") == ""
    assert referenced("{{b}} {{a}} {{b}}") == ["b", "a"]


def test_converter_splits_the_idea_into_sections() -> None:
    request = ComposeInput(
        raw=(
            "You are a support agent for Acme. We are a hosting company with 2,000 customers. "
            "Never promise refunds. Answer the customer's question about <issue>."
        ),
        goal="Resolve tickets on first contact",
        constraints="No legal advice",
        output_format="Plain text, two paragraphs",
    )
    out = offline.convert(request)
    assert out.system == "You are a support agent for Acme."
    assert out.context == "We are a hosting company with 2,000 customers."
    assert out.developer.splitlines() == [
        "Goal: Resolve tickets on first contact",
        "Never promise refunds.",
        "Constraints: No legal advice",
        "Output format: Plain text, two paragraphs",
    ]
    assert out.user == "Answer the customer's question about {{issue}}."
    assert [v.name for v in out.variables] == ["issue"]
    assert out.model_hints is not None


def test_labelled_blocks_go_to_their_sections() -> None:
    out = offline.convert(
        ComposeInput(raw="Context: a bakery in Lyon\nTask: write a slogan\nRules:\nat most 8 words")
    )
    assert out.context == "a bakery in Lyon"
    assert out.user == "write a slogan"
    assert out.developer == "at most 8 words"
    assert "higher temperature" in (out.model_hints or "")


def test_rules_without_a_task_get_an_input_variable() -> None:
    out = offline.convert(ComposeInput(raw="Always answer in French."))
    assert out.user == "{{input}}"
    assert [v.name for v in out.variables] == ["input"]


def test_critic_flags_every_missing_technique_and_cites_the_table() -> None:
    request = ComposeInput(raw="Write something good about coffee.")
    converted = offline.convert(request)
    critic = offline.critique(request, converted, TECHNIQUES)
    assert len(critic.criticisms) == 6 == len(critic.fixes)
    joined = "\n".join(critic.criticisms)
    for title in ("Role Prompting", "Few-Shot Examples", "Structured Output with a Schema",
                  "Specify Audience, Goal and Format", "Constraints and Negative Instructions",
                  "Context Window Budgeting"):  # fmt: skip
        assert f"technique: {title}" in joined
    assert critic.alternative_prompt.system.startswith("You are")
    assert "{{examples}}" in critic.alternative_prompt.context


def test_critic_without_the_techniques_table_still_critiques_without_citations() -> None:
    request = ComposeInput(raw="Write something good about coffee.")
    critic = offline.critique(request, offline.convert(request), [])
    assert len(critic.criticisms) == 6
    assert "technique:" not in " ".join(critic.criticisms)


def test_a_complete_prompt_passes_and_the_judge_keeps_it() -> None:
    request = ComposeInput(
        raw=(
            "You are a senior copywriter. Write a product description of {{product}} for "
            "busy parents shopping online, for example like the one on our home page. Never "
            "mention competitors."
        ),
        output_format="Markdown list, at most 5 bullets",
    )
    converted = offline.convert(request)
    critic = offline.critique(request, converted, TECHNIQUES)
    assert critic.criticisms == []
    final = offline.judge(request, converted, critic)
    assert final.final_prompt == converted.sections()
    assert [v.name for v in final.final_variables] == ["product"]
    assert "passed every check" in final.decision_notes[0]


def test_the_judge_merges_fixes_and_lists_the_variables_it_uses() -> None:
    request = ComposeInput(raw="Tell me stuff about [CITY].")
    converted = offline.convert(request)
    critic = offline.critique(request, converted, TECHNIQUES)
    final = offline.judge(request, converted, critic)
    assert final.final_prompt.user == converted.user
    assert final.final_prompt.system == critic.alternative_prompt.system
    names = [v.name for v in final.final_variables]
    assert names == referenced("\n".join(final.final_prompt.model_dump().values()))
    assert {"city", "goal", "audience", "examples"} <= set(names)
    assert sum(note.startswith("Applied:") for note in final.decision_notes) == len(critic.fixes)


def test_the_engine_is_deterministic_and_its_json_matches_the_schema_models() -> None:
    request = ComposeInput(raw="Summarise <article> for executives.")
    first = offline.convert(request)
    assert to_json(first) == to_json(offline.convert(request))
    critic = offline.critique(request, first, TECHNIQUES)
    final = offline.judge(request, first, critic)
    assert ConverterOutput.model_validate(to_json(first)) == first
    assert CriticOutput.model_validate(to_json(critic)) == critic
    assert JudgeOutput.model_validate(to_json(final)) == final
    assert set(to_json(final)) == {"finalPrompt", "finalVariables", "decisionNotes"}
    assert set(to_json(critic)) == {"criticisms", "alternativePrompt", "fixes"}


def test_the_vague_rule_names_the_words_and_adds_only_what_is_missing() -> None:
    request = ComposeInput(raw="Make it sound good for [AUDIENCE].", goal="Get sign-ups")
    converted = offline.convert(request)
    critic = offline.critique(request, converted, [])
    vague = next(c for c in critic.criticisms if c.startswith("Vague instructions"))
    assert "'make it', 'good'" in vague
    developer = critic.alternative_prompt.developer
    assert developer.count("Goal:") == 1 and "{{goal}}" not in developer
    assert "Audience: {{audience}}" not in developer
    short = offline.critique(
        ComposeInput(raw="Summarise it."), offline.convert(ComposeInput(raw="Summarise it.")), []
    )
    assert any("a task of only a few words" in c for c in short.criticisms)
    assert "Goal: {{goal}}" in short.alternative_prompt.developer
