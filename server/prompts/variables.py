"""``{{name}}`` placeholders: finding them, checking declared variables, and the warnings.

A placeholder is ``{{`` + optional spaces + a name (``[A-Za-z_][A-Za-z0-9_]*``) + optional
spaces + ``}}``. Anything else between braces stays literal text: a ``{{`` with no ``}}``
after it is reported as unclosed, one whose inside is not a name as an invalid placeholder.
Declared variables must have valid, distinct names (an error); a variable used but not
declared, or declared but not used, is a warning.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from server.prompts.content import PromptContent, Variable
from server.prompts.errors import InvalidPrompt

NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
NAME_RE = re.compile(NAME_PATTERN)
PLACEHOLDER_RE = re.compile(rf"\{{\{{[ \t]*({NAME_PATTERN})[ \t]*\}}\}}")

UNDECLARED = "undeclared_variable"
UNUSED = "unused_variable"
UNCLOSED = "unclosed_placeholder"
INVALID_PLACEHOLDER = "invalid_placeholder"


@dataclass(frozen=True, slots=True)
class VariableWarning:
    """Something worth telling the author that does not stop a save."""

    code: str
    message: str
    field: str
    variable: str | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class Scan:
    """What one text contains: names in order of first use, and placeholder problems."""

    names: tuple[str, ...]
    problems: tuple[tuple[str, int], ...]


def scan(text: str) -> Scan:
    """Find the placeholders of ``text`` and every malformed ``{{`` (code, offset)."""
    names: dict[str, None] = {}
    problems: list[tuple[str, int]] = []
    position = text.find("{{")
    while position != -1:
        match = PLACEHOLDER_RE.match(text, position)
        if match is not None:
            names.setdefault(match.group(1), None)
            position = text.find("{{", match.end())
            continue
        close = text.find("}}", position + 2)
        if close == -1:
            problems.append((UNCLOSED, position))
            break  # every later "{{" is unclosed as well
        problems.append((INVALID_PLACEHOLDER, position))
        position = text.find("{{", close + 2)
    return Scan(tuple(names), tuple(problems))


def used_names(content: PromptContent) -> list[str]:
    """Every variable the content's texts use, in order of first use."""
    seen: dict[str, None] = {}
    for _, text in content.texts():
        for name in scan(text).names:
            seen.setdefault(name, None)
    return list(seen)


def declare(
    raw: Sequence[Mapping[str, object]], *, field: str = "variables"
) -> tuple[Variable, ...]:
    """Declared variables from ``{name, value?, id?}`` items; invalid or repeated names fail.

    An item without an id gets a new one, so every stored variable has a stable id.
    """
    declared: list[Variable] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        name = item.get("name")
        if not isinstance(name, str) or NAME_RE.fullmatch(name) is None:
            raise InvalidPrompt(
                f"variable name {name!r} is invalid: use letters, digits and _, "
                "not starting with a digit",
                field=f"{field}.{index}.name",
            )
        if name in seen:
            raise InvalidPrompt(
                f"variable {name!r} is declared twice", field=f"{field}.{index}.name"
            )
        seen.add(name)
        value = item.get("value")
        ident = item.get("id")
        declared.append(
            Variable(
                id=ident if isinstance(ident, str) and ident else str(uuid.uuid4()),
                name=name,
                value=value if isinstance(value, str) else "",
            )
        )
    return tuple(declared)


def warnings_for(content: PromptContent) -> list[VariableWarning]:
    """The warnings a save reports: undeclared, unused, unclosed and invalid placeholders."""
    warnings: list[VariableWarning] = []
    declared = {v.name for v in content.variables}
    used: dict[str, str] = {}
    for field, text in content.texts():
        result = scan(text)
        for name in result.names:
            used.setdefault(name, field)
        for code, offset in result.problems:
            what = "a '{{' with no closing '}}'" if code == UNCLOSED else "'{{' not around a name"
            warnings.append(
                VariableWarning(code, f"{what} at offset {offset}", field, offset=offset)
            )
    for name, field in used.items():
        if name not in declared:
            warnings.append(
                VariableWarning(
                    UNDECLARED, f"variable {name!r} is used but not declared", field, name
                )
            )
    for index, variable in enumerate(content.variables):
        if variable.name not in used:
            warnings.append(
                VariableWarning(
                    UNUSED,
                    f"variable {variable.name!r} is declared but not used",
                    f"variables.{index}.name",
                    variable.name,
                )
            )
    return warnings
