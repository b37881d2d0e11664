"""A version as one live text, and back: how sessions start from and publish to prompts.

A live session edits one plain text. A version with sections becomes its ``content`` (if any)
followed by each section under a marker line ``--- name ---``; publishing parses such a text
back into content and sections, so a version survives the trip unchanged. A text without
marker lines is plain ``content``. (A line of the content that looks exactly like a marker is
read as one.)
"""

from __future__ import annotations

import re

from server.prompts.content import SECTION_NAMES, PromptContent

MARKER_RE = re.compile(r"^--- (" + "|".join(SECTION_NAMES) + r") ---$", re.MULTILINE)


def marker(name: str) -> str:
    """The marker line that starts a section in a live text."""
    return f"--- {name} ---"


def version_text(content: PromptContent) -> str:
    """The live text of a version: content, then each given section under its marker."""
    if not content.sections:
        return content.content or ""
    pieces = [] if content.content is None else [content.content]
    for name in SECTION_NAMES:
        text = content.sections.get(name)
        if text is not None:
            pieces.append(f"{marker(name)}\n{text}")
    return "\n".join(pieces)


def _drop_joiner(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


def content_from_text(text: str, base: PromptContent | None = None) -> PromptContent:
    """Content and sections parsed from a live text; variables and model config from ``base``."""
    variables = base.variables if base is not None else ()
    config = dict(base.model_config) if base is not None else {}
    markers = list(MARKER_RE.finditer(text))
    if not markers:
        return PromptContent(content=text, variables=variables, model_config=config)
    head = _drop_joiner(text[: markers[0].start()])
    sections: dict[str, str] = {}
    for index, found in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        body = text[found.end() + 1 : end] if found.end() < len(text) else ""
        if index + 1 < len(markers):
            body = _drop_joiner(body)
        name = found.group(1)
        # A repeated marker continues its section rather than losing the text before it.
        sections[name] = body if name not in sections else f"{sections[name]}\n{body}"
    return PromptContent(
        content=head or None, sections=sections, variables=variables, model_config=config
    )
