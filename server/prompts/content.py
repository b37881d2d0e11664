"""What one prompt version holds, as plain data: text, sections, variables, model config."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The structured sections of a prompt, in the order they are shown and sent.
SECTION_NAMES = ("system", "developer", "user", "context")
#: The name under which the plain ``content`` text appears next to the sections.
CONTENT = "content"


@dataclass(frozen=True, slots=True)
class Variable:
    """A declared variable: its stable id, its name, and its default value ("" = none)."""

    id: str
    name: str
    value: str = ""

    def to_json(self) -> dict[str, str]:
        """The stored shape (``{id, name, value}``, as in the schema doc)."""
        return {"id": self.id, "name": self.name, "value": self.value}


@dataclass(frozen=True, slots=True)
class PromptContent:
    """The content of a version. ``sections`` holds only the sections that were given."""

    content: str | None = None
    sections: Mapping[str, str] | None = None
    variables: tuple[Variable, ...] = ()
    model_config: Mapping[str, Any] = field(default_factory=dict)

    def texts(self) -> Iterator[tuple[str, str]]:
        """Every text with its field name (``content``, ``sections.system``…), in order."""
        if self.content is not None:
            yield CONTENT, self.content
        for name in SECTION_NAMES:
            value = (self.sections or {}).get(name)
            if value is not None:
                yield f"sections.{name}", value

    def size(self) -> int:
        """Characters of text in all (content, sections and variable values)."""
        return sum(len(text) for _, text in self.texts()) + sum(
            len(v.value) for v in self.variables
        )


def variables_from_json(raw: object) -> tuple[Variable, ...]:
    """Stored variables (a list of ``{id, name, value}``) as :class:`Variable` objects."""
    if not isinstance(raw, list):
        return ()
    found = []
    for item in raw:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            found.append(
                Variable(str(item.get("id") or ""), item["name"], str(item.get("value") or ""))
            )
    return tuple(found)


def sections_from_json(raw: object) -> dict[str, str] | None:
    """Stored sections, keeping the known section names whose values are text."""
    if not isinstance(raw, dict):
        return None
    return {k: v for k, v in raw.items() if k in SECTION_NAMES and isinstance(v, str)}
