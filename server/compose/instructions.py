"""What each compose agent is told when a language model plays it.

Each agent gets a system message with its task and the exact JSON shape to answer with, and a
user message holding its material as JSON between delimiters (the idea is data, never
instructions to the agent).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from server.compose.models import ComposeInput, TechniqueRow

_SECTIONS = '{"system": string, "developer": string, "user": string, "context": string}'
_VARIABLES = '[{"id": string, "name": string, "value": string}]'

_JSON_ONLY = (
    "Answer with one JSON object and nothing else: no prose, no code fences. "
    "Write template variables as {{name}}."
)

CONVERTER = (
    "You are the converter agent of a prompt-engineering studio. Turn the user's rough idea "
    "into a structured prompt: the system section (the model's role), the developer section "
    "(rules, goal, constraints, output format), the user section (the task message, with "
    "placeholders for what changes between uses) and the context section (background). Detect "
    "every placeholder the idea uses ({{x}}, <x>, [X], ALL_CAPS names), rewrite it as {{name}} "
    "and list it in variables. "
    f"{_JSON_ONLY} Shape: "
    '{"system": string, "developer": string, "user": string, "context": string, '
    f'"variables": {_VARIABLES}, "modelHints": string}}'
)

CRITIC = (
    "You are the critic agent of a prompt-engineering studio. Review the converter's prompt "
    "against the techniques listed in the material: a missing output format, vague "
    "instructions, no examples, no role, no constraints, an unbounded length, and anything "
    "else that would make a model answer badly. List each problem in criticisms, write an "
    "improved prompt in alternativePrompt, and list the changes you made in fixes. "
    f"{_JSON_ONLY} Shape: "
    f'{{"criticisms": [string], "alternativePrompt": {_SECTIONS}, "fixes": [string]}}'
)

JUDGE = (
    "You are the judge agent of a prompt-engineering studio. Given the converter's prompt and "
    "the critic's review, produce the final prompt: keep what the converter got right, merge "
    "in every fix that improves it, reject fixes that would change the user's intent. List "
    "every variable the final prompt uses in finalVariables, and say what you decided and why "
    "in decisionNotes. "
    f"{_JSON_ONLY} Shape: "
    f'{{"finalPrompt": {_SECTIONS}, "finalVariables": {_VARIABLES}, '
    '"decisionNotes": [string]}'
)

RETRY = (
    "That answer was not valid: {error}\n"
    "Reply again with only the corrected JSON object in the shape you were given."
)


def _material(payload: dict[str, Any]) -> str:
    body = json.dumps(payload, ensure_ascii=False, indent=2)
    return f"<material>\n{body}\n</material>"


def idea_of(request: ComposeInput) -> dict[str, Any]:
    """The user's request as the agents see it (absent fields left out)."""
    idea: dict[str, Any] = {"raw": request.raw}
    if request.goal:
        idea["goal"] = request.goal
    if request.constraints:
        idea["constraints"] = request.constraints
    if request.output_format:
        idea["outputFormat"] = request.output_format
    return idea


def converter_material(request: ComposeInput) -> str:
    """The converter's user message."""
    return _material({"idea": idea_of(request)})


def critic_material(
    request: ComposeInput, converted: dict[str, Any], techniques: Sequence[TechniqueRow]
) -> str:
    """The critic's user message: the idea, the converter's prompt and the techniques table."""
    return _material(
        {
            "idea": idea_of(request),
            "converterPrompt": converted,
            "techniques": [{"title": t.title, "description": t.description} for t in techniques],
        }
    )


def judge_material(request: ComposeInput, converted: dict[str, Any], critic: dict[str, Any]) -> str:
    """The judge's user message: the idea and both earlier agents' answers."""
    return _material({"idea": idea_of(request), "converterPrompt": converted, "critic": critic})
