"""Who is asking and within which bounds: passed to every prompts operation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    """A user of a tenant."""

    tenant_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class PromptLimits:
    """The bounds saves, labels and imports are checked against (from the server settings)."""

    #: Characters of text in one version (content, sections and variable values together).
    max_text_chars: int = 500_000
    #: Declared variables in one version.
    max_variables: int = 100
    #: Stored labels on one prompt (``latest`` and ``production`` not counted).
    max_labels: int = 50
    #: Versions in one imported document.
    max_import_versions: int = 500
    #: Version numbers tried before a save gives up with a conflict.
    save_attempts: int = 5
