"""The rule-based compose engine used with the ``offline`` model: no LLM, same JSON.

* The converter splits the idea into the four sections (labelled blocks such as ``Context:``
  first, then sentence by sentence: a role goes to ``system``, rules to ``developer``,
  background to ``context``, the task to ``user``) and normalises placeholders to ``{{name}}``.
* The critic checks the result against six rules — missing output format, vague instructions,
  no examples, no role, no constraints, unbounded length — each tied to a row of the techniques
  table, which it cites when the row is there; each finding comes with a concrete fix applied
  to an alternative prompt.
* The judge merges: the converter's text plus every fix, the variables the final text uses, and
  a decision note per criticism.

Everything is deterministic: the same input always gives the same three outputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from server.compose.models import (
    ComposeInput,
    ConverterOutput,
    CriticOutput,
    JudgeOutput,
    PromptSections,
    TechniqueRow,
)
from server.compose.variables import normalise, referenced, variables_of

_LABEL = re.compile(
    r"^\s*#*\s*(system|role|developer|instructions?|rules|user|task|context|background)\s*:\s*(.*)$",
    re.IGNORECASE,
)
_LABEL_SECTION = {
    "system": "system",
    "role": "system",
    "developer": "developer",
    "instruction": "developer",
    "instructions": "developer",
    "rules": "developer",
    "user": "user",
    "task": "user",
    "context": "context",
    "background": "context",
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9{<\[\"'])")
_ROLE = re.compile(
    r"^(you are|you're|act as|acting as|as an? |pretend to be|imagine you are|your role)", re.I
)
_RULE = re.compile(
    r"\b(must|never|always|do not|don't|should|avoid|make sure|ensure|only|at most|"
    r"no more than|respond|reply|answer in|format|output|return|limit|keep it)\b",
    re.I,
)
_BACKGROUND = re.compile(
    r"^(background|context|given that|for context|we are|we're|our |i am|i'm|the audience|"
    r"the data|note that|currently|this is for)",
    re.I,
)
_FORMAT = re.compile(
    r"\b(json|yaml|csv|xml|markdown|table|bullet|list|numbered|headings?|format|paragraphs?|"
    r"sections?|template|schema)\b",
    re.I,
)
_VAGUE = re.compile(
    r"\b(something|stuff|things|etc|somehow|whatever|kind of|sort of|maybe|good|nice|better|"
    r"some|a bit|improve|make it)\b",
    re.I,
)
_EXAMPLES = re.compile(r"\b(example|examples|e\.g\.|for instance|such as|sample)\b|<example>", re.I)
_CONSTRAINTS = re.compile(
    r"\b(must|never|always|do not|don't|avoid|only|without|no more than|at most|at least|"
    r"limit|constraint|constraints|required|forbidden)\b",
    re.I,
)
_LENGTH = re.compile(
    r"\b(\d+\s*(words?|sentences?|paragraphs?|characters?|chars|lines?|bullets?|points?|pages?|"
    r"items?|tokens?)|short|brief|concise|one[- ]line|single sentence|at most|maximum|max)\b",
    re.I,
)
_CREATIVE = re.compile(
    r"\b(story|poem|brainstorm|slogan|creative|ideas|names|tagline|lyrics)\b", re.I
)
_STRICT = re.compile(r"\b(json|csv|yaml|xml|classify|extract|label|parse|schema|sql)\b", re.I)

#: Technique titles (rows of the ``techniques`` table) the critic's rules cite.
ROLE_TECHNIQUE = "Role Prompting"
EXAMPLES_TECHNIQUE = "Few-Shot Examples"
FORMAT_TECHNIQUE = "Structured Output with a Schema"
SPECIFIC_TECHNIQUE = "Specify Audience, Goal and Format"
CONSTRAINTS_TECHNIQUE = "Constraints and Negative Instructions"
LENGTH_TECHNIQUE = "Context Window Budgeting"


def _sentences(block: str) -> list[str]:
    parts: list[str] = []
    for line in block.splitlines():
        line = line.strip()
        if line:
            parts.extend(p.strip() for p in _SENTENCE_END.split(line) if p.strip())
    return parts


def _classify(sentence: str) -> str:
    if _ROLE.search(sentence):
        return "system"
    if _BACKGROUND.search(sentence):
        return "context"
    if _RULE.search(sentence):
        return "developer"
    return "user"


def _split(raw: str) -> dict[str, list[str]]:
    """The idea's sentences by section: labelled blocks as labelled, the rest by content."""
    sections: dict[str, list[str]] = {"system": [], "developer": [], "user": [], "context": []}
    current: str | None = None
    loose: list[str] = []
    for line in raw.splitlines():
        label = _LABEL.match(line)
        if label is not None:
            current = _LABEL_SECTION[label.group(1).lower()]
            if label.group(2).strip():
                sections[current].append(label.group(2).strip())
        elif not line.strip():
            current = None
        elif current is not None:
            sections[current].append(line.strip())
        else:
            loose.append(line)
    for sentence in _sentences("\n".join(loose)):
        sections[_classify(sentence)].append(sentence)
    return sections


def _model_hints(text: str) -> str:
    if _STRICT.search(text):
        return "Use a low temperature (0-0.3): the answer must follow a fixed format exactly."
    if _CREATIVE.search(text):
        return "Use a higher temperature (0.7-1.0): the task is creative and benefits from variety."
    return "A moderate temperature (0.3-0.7) suits this task."


def convert(request: ComposeInput) -> ConverterOutput:
    """Agent 1: the rough idea as system / developer / user / context plus its variables."""
    parts = _split(request.raw)
    if request.goal:
        parts["developer"].insert(0, f"Goal: {request.goal.strip()}")
    if request.constraints:
        parts["developer"].append(f"Constraints: {request.constraints.strip()}")
    if request.output_format:
        parts["developer"].append(f"Output format: {request.output_format.strip()}")
    texts: dict[str, str] = {}
    names: list[str] = []
    for section in ("system", "developer", "user", "context"):
        # Rules read best one per line; prose sections as running text.
        joiner = "\n" if section == "developer" else " "
        text, found = normalise(joiner.join(parts[section]))
        texts[section] = text
        names.extend(name for name in found if name not in names)
    if not texts["user"]:
        # Rules and background without a task: the user message is the input they apply to.
        texts["user"] = "{{input}}"
        if "input" not in names:
            names.append("input")
    return ConverterOutput(
        system=texts["system"],
        developer=texts["developer"],
        user=texts["user"],
        context=texts["context"],
        variables=variables_of(names),
        modelHints=_model_hints(" ".join([request.raw, request.output_format or ""])),
    )


@dataclass(frozen=True, slots=True)
class _Rule:
    technique: str
    problem: str
    fix: str
    applies: Callable[[PromptSections, ComposeInput], bool]
    apply: Callable[[dict[str, str]], None]


def _whole(sections: PromptSections) -> str:
    return "\n".join([sections.system, sections.developer, sections.user, sections.context])


def _append(section: str, text: str) -> Callable[[dict[str, str]], None]:
    def apply(draft: dict[str, str]) -> None:
        draft[section] = f"{draft[section]}\n{text}".strip() if draft[section] else text

    return apply


def _set_role(draft: dict[str, str]) -> None:
    role = "You are an experienced specialist in the subject of this request."
    draft["system"] = f"{role} {draft['system']}".strip()


def _be_specific(draft: dict[str, str]) -> None:
    whole = "\n".join(draft.values()).lower()
    lines = ["Be specific: say exactly what a good answer contains; avoid vague praise."]
    if "goal:" not in whole:
        lines.append("Goal: {{goal}}")
    if "audience" not in whole:
        lines.append("Audience: {{audience}}")
    _append("developer", "\n".join(lines))(draft)


def _vague_words(sections: PromptSections) -> str:
    found = dict.fromkeys(
        m.group(0).lower() for m in _VAGUE.finditer(sections.user + " " + sections.developer)
    )
    if not found:
        return "a task of only a few words"
    quoted = ", ".join(f"'{word}'" for word in list(found)[:4])
    return f"words such as {quoted}"


_RULES: tuple[_Rule, ...] = (
    _Rule(
        ROLE_TECHNIQUE,
        "No role: nothing tells the model who it is or what expertise and standards to apply.",
        "Added a role to the system section.",
        lambda s, i: not s.system.strip(),
        _set_role,
    ),
    _Rule(
        FORMAT_TECHNIQUE,
        "Missing output format: the prompt does not say what shape the answer must take.",
        "Specified the output format in the developer section.",
        lambda s, i: not i.output_format and not _FORMAT.search(_whole(s)),
        _append(
            "developer",
            "Output format: start with a one-sentence summary, then the answer as a Markdown "
            "list of points.",
        ),
    ),
    _Rule(
        SPECIFIC_TECHNIQUE,
        "Vague instructions: {vague} leave the model to guess what a good answer is.",
        "Made the instructions specific: what a good answer contains, for whom and why.",
        lambda s, i: bool(_VAGUE.search(s.user + " " + s.developer)) or len(s.user.split()) < 5,
        _be_specific,
    ),
    _Rule(
        EXAMPLES_TECHNIQUE,
        "No examples: the model has no sample of the expected output to imitate.",
        "Added an examples slot to the context section.",
        lambda s, i: not _EXAMPLES.search(_whole(s)),
        _append("context", "Examples of the expected output:\n{{examples}}"),
    ),
    _Rule(
        CONSTRAINTS_TECHNIQUE,
        "No constraints: nothing says what the answer must avoid or when to stop.",
        "Added constraints to the developer section.",
        lambda s, i: not i.constraints and not _CONSTRAINTS.search(_whole(s)),
        _append(
            "developer",
            "Constraints: do not invent facts; if information is missing, say so instead of "
            "guessing.",
        ),
    ),
    _Rule(
        LENGTH_TECHNIQUE,
        "Unbounded length: the prompt sets no limit on how long the answer may be.",
        "Bounded the answer's length in the developer section.",
        lambda s, i: not _LENGTH.search(_whole(s) + " " + (i.output_format or "")),
        _append("developer", "Length: at most 300 words."),
    ),
)


def _citation(title: str, techniques: dict[str, TechniqueRow]) -> str:
    row = techniques.get(title.casefold())
    if row is None:
        return ""
    first = row.description.split(". ")[0].rstrip(".")
    return f" (technique: {row.title} — {first}.)"


def critique(
    request: ComposeInput, converted: ConverterOutput, techniques: Sequence[TechniqueRow]
) -> CriticOutput:
    """Agent 2: the converter's prompt checked against the rules, and the prompt with fixes."""
    by_title = {row.title.casefold(): row for row in techniques}
    sections = converted.sections()
    draft = sections.model_dump()
    criticisms: list[str] = []
    fixes: list[str] = []
    for rule in _RULES:
        if rule.applies(sections, request):
            problem = rule.problem.format(vague=_vague_words(sections))
            criticisms.append(problem + _citation(rule.technique, by_title))
            fixes.append(rule.fix)
            rule.apply(draft)
    return CriticOutput(
        criticisms=criticisms,
        alternativePrompt=PromptSections.model_validate(draft),
        fixes=fixes,
    )


def _merge(original: str, alternative: str) -> str:
    """The original text followed by the alternative's lines that it does not contain yet."""
    if not original.strip():
        return alternative
    lines = original.splitlines()
    present = {line.strip() for line in lines}
    added = [
        line for line in alternative.splitlines() if line.strip() and line.strip() not in present
    ]
    if added and alternative.strip().endswith(original.strip()):
        return alternative  # the fix was prepended (e.g. the role)
    return "\n".join([*lines, *added])


def judge(request: ComposeInput, converted: ConverterOutput, critic: CriticOutput) -> JudgeOutput:
    """Agent 3: the converter's prompt with every fix merged in, and why."""
    original = converted.sections()
    alternative = critic.alternative_prompt
    final = PromptSections(
        system=_merge(original.system, alternative.system),
        developer=_merge(original.developer, alternative.developer),
        user=_merge(original.user, alternative.user),
        context=_merge(original.context, alternative.context),
    )
    names = referenced(_whole(final))
    defaults = {v.name: v.value for v in converted.variables}
    notes = [f"Applied: {fix}" for fix in critic.fixes]
    if not critic.fixes:
        notes.append("The converter's prompt passed every check; kept it unchanged.")
    kept = [name for name in names if name in defaults]
    new = [name for name in names if name not in defaults]
    if kept:
        notes.append("Variables from the idea: " + ", ".join(kept) + ".")
    if new:
        notes.append("New variables to fill in: " + ", ".join(new) + ".")
    dropped = [v.name for v in converted.variables if v.name not in names]
    if dropped:
        notes.append("Dropped unused variables: " + ", ".join(dropped) + ".")
    return JudgeOutput(
        finalPrompt=final,
        finalVariables=variables_of(names, defaults),
        decisionNotes=notes,
    )
