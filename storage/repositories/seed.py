"""Loading the bundled templates and techniques (``prompt-studio db seed``), idempotently."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Technique, Template


@dataclass(frozen=True, slots=True)
class SeedResult:
    """How many rows a seed run added, and how many were already there."""

    templates_added: int
    templates_present: int
    techniques_added: int
    techniques_present: int


def load_seed_file(name: str) -> list[dict[str, Any]]:
    """One of the bundled seed files (``templates.json``, ``techniques.json``)."""
    text = resources.files("storage.seed").joinpath(name).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError(f"{name} must hold a JSON array")
    return data


async def seed(db: AsyncSession) -> SeedResult:
    """Insert every bundled template and technique that is not there yet (matched by name/title)."""
    templates = load_seed_file("templates.json")
    techniques = load_seed_file("techniques.json")
    # Only the global templates count: a tenant may have its own template of the same name.
    existing_templates = set(
        await db.scalars(select(Template.name).where(Template.tenant_id.is_(None)))
    )
    existing_techniques = set(await db.scalars(select(Technique.title)))
    new_templates = [t for t in templates if t["name"] not in existing_templates]
    new_techniques = [t for t in techniques if t["title"] not in existing_techniques]
    db.add_all(
        Template(
            name=t["name"],
            description=t["description"],
            category=t["category"],
            tags=t["tags"],
            sections=t["sections"],
            default_variables=t["default_variables"],
        )
        for t in new_templates
    )
    db.add_all(
        Technique(
            title=t["title"],
            description=t["description"],
            good_example=t["good_example"],
            bad_example=t["bad_example"],
            common_mistakes=t["common_mistakes"],
            snippet=t.get("snippet"),
        )
        for t in new_techniques
    )
    await db.flush()
    return SeedResult(
        templates_added=len(new_templates),
        templates_present=len(templates) - len(new_templates),
        techniques_added=len(new_techniques),
        techniques_present=len(techniques) - len(new_techniques),
    )
