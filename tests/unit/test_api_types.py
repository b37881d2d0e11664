"""The shared REST helpers of :mod:`server.api.types`: list pages and documented errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.api.types import ApiModel, Page, PageParams, page_of


class _Item(ApiModel):
    name: str


class _ItemList(Page):
    items: list[_Item]


def test_a_page_carries_the_items_the_total_and_the_requests_paging() -> None:
    built = page_of(_ItemList, (_Item(name=n) for n in "ab"), 7, PageParams(limit=2, offset=4))
    assert built.model_dump() == {
        "total": 7,
        "limit": 2,
        "offset": 4,
        "items": [{"name": "a"}, {"name": "b"}],
    }


def test_a_page_refuses_items_of_another_shape() -> None:
    with pytest.raises(ValidationError):
        page_of(_ItemList, [{"title": "x"}], 1, PageParams())
