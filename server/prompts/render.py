"""Rendering a version: substitute variables into its texts, then build the chat messages.

Substitution is one pass over the original text, so a value is never rendered again: a value
containing ``{{x}}`` stays literal. Values come from the request, falling back on the declared
variables' non-empty defaults; if any used variable has neither, rendering fails once, naming
every missing variable.

Messages: ``system`` → a system message, ``developer`` → a developer message, and ``context``
followed by ``user`` → one user message (the context is the material the request refers to).
A version without sections becomes one user message of its ``content``. Empty texts make no
message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from server.llm.base import ChatMessage, messages_of
from server.prompts.content import PromptContent
from server.prompts.errors import MissingVariables
from server.prompts.variables import PLACEHOLDER_RE, used_names


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """The rendered texts (same shape as the version's) and the messages they make."""

    content: str | None
    sections: dict[str, str] | None
    messages: list[ChatMessage]


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace every placeholder of ``text`` whose name has a value, in one pass."""

    def value_of(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return PLACEHOLDER_RE.sub(value_of, text)


def values_for(content: PromptContent, given: Mapping[str, str]) -> dict[str, str]:
    """The values to render with: declared non-empty defaults, overridden by ``given``."""
    values = {v.name: v.value for v in content.variables if v.value}
    values.update(given)
    return values


def render(content: PromptContent, given: Mapping[str, str]) -> RenderedPrompt:
    """Render every text of ``content``; :class:`MissingVariables` if any value is missing."""
    values = values_for(content, given)
    missing = [name for name in used_names(content) if name not in values]
    if missing:
        raise MissingVariables(missing)
    text = None if content.content is None else substitute(content.content, values)
    sections = (
        None
        if content.sections is None
        else {name: substitute(value, values) for name, value in content.sections.items()}
    )
    return RenderedPrompt(text, sections, to_messages(text, sections))


def to_messages(content: str | None, sections: Mapping[str, str] | None) -> list[ChatMessage]:
    """The chat messages a (rendered) version makes; see the module docstring."""
    if not sections or not any(sections.values()):
        return messages_of([("user", content or "")])
    user = "\n\n".join(part for part in (sections.get("context"), sections.get("user")) if part)
    return messages_of(
        [
            ("system", sections.get("system", "")),
            ("developer", sections.get("developer", "")),
            ("user", user),
        ]
    )
