"""Finding template variables in free text and rewriting them as ``{{name}}``.

People write placeholders in many ways; the composer recognises four and normalises them all to
the studio's ``{{name}}`` form:

* ``{{customer_name}}`` — already canonical;
* ``<topic>`` — unless a matching ``</topic>`` shows it is a delimiter tag;
* ``[TOPIC]`` or ``[customer name]`` — unless it is a Markdown link or a checkbox;
* ``PRODUCT_NAME`` or ``TOPIC`` — an ALL_CAPS word that is not a well-known acronym or an
  emphasised English word (``NOT``, ``NEVER`` …) in a line that is not all capitals anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.compose.models import Variable

_CURLY = re.compile(r"\{\{\s*([A-Za-z_][\w .-]{0,60}?)\s*\}\}")
_ANGLE = re.compile(r"<([A-Za-z][A-Za-z0-9_]*(?: [A-Za-z0-9_]+){0,3})>")
_SQUARE = re.compile(r"\[([A-Za-z][A-Za-z0-9_ ]{0,40})\](?!\()")
_CAPS = re.compile(r"(?<![\w{])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{3,})(?![\w}])")

# Capitalised words that are not placeholders: acronyms and emphasis.
_NOT_PLACEHOLDERS = frozenset(
    re.split(
        r"\s+",
        """
    API APIS AWS CEO CFO CLI CPU CSS CSV CTA CTO DNS FAQ GDPR GPT GPU HTML HTTP HTTPS ISO JSON
    JWT KPI LLM NASA PDF PHP PII REST RSS SAAS SDK SEO SLA SMS SQL SSH SSO TLS TODO UTC URL
    URLS USA USB USD EUR GBP UUID XML YAML ASAP FYI OKR OKRS ROI HR QA UI UX
    NOT NEVER ALWAYS MUST ONLY AND THE ALL YES NONE NOTE IMPORTANT WARNING DONT SHOULD
    PLEASE EVERY EACH ANY WITH WITHOUT FOR FROM THIS THAT EXACTLY STRICTLY
    """.strip(),
    )
)


@dataclass(frozen=True, slots=True)
class _Match:
    start: int
    end: int
    name: str


def canonical_name(raw: str) -> str:
    """``Customer Name`` / ``customer-name`` / ``CUSTOMER_NAME`` → ``customer_name``."""
    words = re.split(r"[^A-Za-z0-9]+", raw.strip())
    return "_".join(word.lower() for word in words if word)


def _caps_line(text: str, position: int) -> bool:
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    line = text[start : end if end != -1 else len(text)]
    return not any(ch.islower() for ch in line)


def _matches(text: str) -> list[_Match]:
    found: list[_Match] = []
    for match in _CURLY.finditer(text):
        found.append(_Match(match.start(), match.end(), canonical_name(match.group(1))))
    for match in _ANGLE.finditer(text):
        if f"</{match.group(1)}>" not in text:
            found.append(_Match(match.start(), match.end(), canonical_name(match.group(1))))
    for match in _SQUARE.finditer(text):
        if match.group(1).strip().lower() != "x":
            found.append(_Match(match.start(), match.end(), canonical_name(match.group(1))))
    for match in _CAPS.finditer(text):
        word = match.group(1)
        if word in _NOT_PLACEHOLDERS or _caps_line(text, match.start()):
            continue
        found.append(_Match(match.start(), match.end(), canonical_name(word)))
    found.sort(key=lambda m: (m.start, -m.end))
    kept: list[_Match] = []
    for candidate in found:
        if candidate.name and (not kept or candidate.start >= kept[-1].end):
            kept.append(candidate)
    return kept


def normalise(text: str) -> tuple[str, list[str]]:
    """``text`` with every placeholder rewritten as ``{{name}}``, and the names in order."""
    out: list[str] = []
    names: list[str] = []
    position = 0
    for match in _matches(text):
        out.append(text[position : match.start])
        out.append("{{" + match.name + "}}")
        position = match.end
        if match.name not in names:
            names.append(match.name)
    out.append(text[position:])
    return "".join(out), names


def referenced(text: str) -> list[str]:
    """The ``{{name}}`` variables a (normalised) text uses, in order of first use."""
    names: list[str] = []
    for match in _CURLY.finditer(text):
        name = canonical_name(match.group(1))
        if name and name not in names:
            names.append(name)
    return names


def variables_of(names: list[str], defaults: dict[str, str] | None = None) -> list[Variable]:
    """Variable rows for ``names``: the id is the name, the value its default (or empty)."""
    known = defaults or {}
    return [Variable(id=name, name=name, value=known.get(name, "")) for name in names]
