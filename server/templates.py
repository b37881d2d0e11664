"""Turning a template into a prompt's first version (no HTTP)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from server.prompts.service import VersionInput
from storage.models import Template


def template_variables(raw: Iterable[Mapping[str, Any]] | None) -> list[dict[str, str]]:
    """Default variables in the stored shape ``{id, name, value}`` (ids made where missing)."""
    variables = []
    for item in raw or []:
        name = str(item.get("name", ""))
        given = item.get("id")
        identifier = str(given) if given else "var_" + re.sub(r"\W", "_", name)
        variables.append({"id": identifier, "name": name, "value": str(item.get("value", ""))})
    return variables


def template_version(template: Template, overrides: Mapping[str, str]) -> VersionInput:
    """Version 1 of a prompt made from ``template``: its sections, and its default variables
    with the values in ``overrides`` (names not declared by the template are added)."""
    variables = template_variables(template.default_variables)
    by_name = {v["name"]: v for v in variables}
    for name, value in overrides.items():
        if name in by_name:
            by_name[name]["value"] = value
        else:
            variables.append(
                {"id": "var_" + re.sub(r"\W", "_", name), "name": name, "value": value}
            )
    sections = {k: str(v) for k, v in (template.sections or {}).items()}
    return VersionInput(sections=sections, variables=variables)
