"""Helpers shared by the runs API tests: prompts to run, and reading server-sent events."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.accounts import Account
from tests.support.inprocess import StudioApi

VERSION: dict[str, Any] = {
    "sections": {"system": "Answer in a {{tone}} tone.", "user": "Explain {{topic}}."},
    "variables": [{"name": "tone", "value": "calm"}, {"name": "topic"}],
}


async def make_prompt(api: StudioApi, who: Account, version: dict[str, Any] = VERSION) -> str:
    """A prompt with one version; its id."""
    created = await api.call("POST", "/api/prompts", who, json={"name": "P", "version": version})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def version_id(api: StudioApi, who: Account, prompt_id: str, number: int = 1) -> str:
    """The id of a version by number."""
    found = await api.call("GET", f"/api/prompts/{prompt_id}/versions/{number}", who)
    assert found.status_code == 200, found.text
    return str(found.json()["id"])


async def run(api: StudioApi, who: Account, **body: Any) -> dict[str, Any]:
    """``POST /api/runs`` that must succeed (201); the run."""
    body.setdefault("model", "offline")
    response = await api.call("POST", "/api/runs", who, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def events_of(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """The ``(event, data)`` pairs of a text/event-stream body."""
    assert response.headers["content-type"].startswith("text/event-stream"), response.text
    found = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((fields["event"], json.loads(fields["data"])))
    return found
