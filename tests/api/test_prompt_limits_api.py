"""The prompts settings reach the API: each limit accepted at its edge, refused past it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from tests.support.inprocess import StudioApi

MakeApi = Callable[..., AbstractAsyncContextManager[StudioApi]]


async def test_limits_from_settings(make_api: MakeApi) -> None:
    async with make_api(
        prompt_max_text_chars=10,
        prompt_max_variables=1,
        prompt_max_labels=1,
        prompt_import_max_versions=1,
    ) as api:
        ana = await api.account()
        made = await api.call(
            "POST", "/api/prompts", ana, json={"name": "p", "version": {"content": "x" * 10}}
        )
        assert made.status_code == 201, made.text
        path = f"/api/prompts/{made.json()['id']}"
        too_long = await api.call("POST", f"{path}/versions", ana, json={"content": "x" * 11})
        assert too_long.status_code == 422 and too_long.json()["error"]["field"] == "content"
        two: dict[str, Any] = {"content": "x", "variables": [{"name": "a"}, {"name": "b"}]}
        too_many = await api.call("POST", f"{path}/versions", ana, json=two)
        assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "variables"

        assert (await api.call("PUT", f"{path}/labels/a", ana, json={"version": 1})).is_success
        over = await api.call("PUT", f"{path}/labels/b", ana, json={"version": 1})
        assert over.status_code == 409 and over.json()["error"]["code"] == "conflict"

        exported = (await api.call("GET", f"{path}/export", ana)).json()
        assert (await api.call("POST", "/api/prompts/import", ana, json=exported)).is_success
        exported["versions"].append(dict(exported["versions"][0], version=2))
        refused = await api.call("POST", "/api/prompts/import", ana, json=exported)
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "versions"
