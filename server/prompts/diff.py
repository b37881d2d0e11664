"""What changed between two versions: a unified diff per text, variables, model config."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from server.prompts.content import CONTENT, SECTION_NAMES, PromptContent

#: Lines of context around each change in the unified diffs.
CONTEXT_LINES = 3


@dataclass(frozen=True, slots=True)
class TextDiff:
    """One text (``content`` or a section) compared; ``diff`` is "" when unchanged."""

    name: str
    changed: bool
    diff: str


@dataclass(frozen=True, slots=True)
class VariableChange:
    """A variable added, removed, or with a new default value (compared by name)."""

    name: str
    change: str  # "added" | "removed" | "changed"
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """A model-config key added, removed or changed."""

    key: str
    change: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class VersionDiff:
    """Everything :func:`diff_versions` found."""

    from_version: int
    to_version: int
    texts: list[TextDiff]
    variables: list[VariableChange]
    model_config: list[ConfigChange]


def unified(before: str, after: str, *, name: str, from_version: int, to_version: int) -> str:
    """A unified diff of two texts, labelled ``v{N}/{name}``; "" when they are equal."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"v{from_version}/{name}",
        tofile=f"v{to_version}/{name}",
        n=CONTEXT_LINES,
    )
    # A last line without a newline would glue onto the next diff line; mark it as diff does.
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def _texts(content: PromptContent) -> dict[str, str]:
    texts = {CONTENT: content.content or ""}
    for name in SECTION_NAMES:
        texts[name] = (content.sections or {}).get(name, "")
    return texts


def _variable_changes(old: PromptContent, new: PromptContent) -> list[VariableChange]:
    before = {v.name: v.value for v in old.variables}
    after = {v.name: v.value for v in new.variables}
    changes = [VariableChange(n, "removed", before[n], None) for n in before if n not in after]
    for name, value in after.items():
        if name not in before:
            changes.append(VariableChange(name, "added", None, value))
        elif before[name] != value:
            changes.append(VariableChange(name, "changed", before[name], value))
    return changes


def _config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ConfigChange]:
    changes = [ConfigChange(k, "removed", old[k], None) for k in old if k not in new]
    for key, value in new.items():
        if key not in old:
            changes.append(ConfigChange(key, "added", None, value))
        elif old[key] != value:
            changes.append(ConfigChange(key, "changed", old[key], value))
    return changes


def diff_versions(
    old: PromptContent, new: PromptContent, *, from_version: int, to_version: int
) -> VersionDiff:
    """Compare two versions' texts (missing = empty), variables and model config."""
    before, after = _texts(old), _texts(new)
    texts = []
    for name, old_text in before.items():
        text = unified(
            old_text, after[name], name=name, from_version=from_version, to_version=to_version
        )
        texts.append(TextDiff(name, bool(text), text))
    return VersionDiff(
        from_version,
        to_version,
        texts,
        _variable_changes(old, new),
        _config_changes(old.model_config, new.model_config),
    )
