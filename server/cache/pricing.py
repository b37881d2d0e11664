"""What a cached answer saves: tokens, and money from a per-model price table.

Prices are US dollars per million tokens, input and output apart. The built-in table covers
common hosted models; ``PROMPT_STUDIO_CACHE_MODEL_PRICES`` (``model=input/output`` pairs,
comma-separated) adds models or overrides these. A model in neither (a local model, the offline
one) saves tokens but no money.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class PriceTableError(ValueError):
    """A price table entry is malformed."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """US dollars per million input (prompt) and output (completion) tokens."""

    input_per_million: float
    output_per_million: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The price of one call with these token counts."""
        return (
            prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million
        ) / 1_000_000


BUILTIN_PRICES: Mapping[str, ModelPrice] = {
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4.1": ModelPrice(2.00, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-3.5-turbo": ModelPrice(0.50, 1.50),
    "o3-mini": ModelPrice(1.10, 4.40),
}

#: Longest model name accepted in the price setting.
MAX_MODEL_NAME = 200


def parse_prices(raw: str) -> tuple[tuple[str, float, float], ...]:
    """Parse ``model=input/output,…`` (dollars per million tokens) into triples.

    Raises :class:`PriceTableError` naming the bad entry.
    """
    entries: list[tuple[str, float, float]] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        model, sep, prices = item.rpartition("=")
        model = model.strip()
        if not sep or not model or len(model) > MAX_MODEL_NAME:
            raise PriceTableError(f"price entry {item!r} must look like model=input/output")
        parts = prices.split("/")
        if len(parts) != 2:
            raise PriceTableError(f"price entry {item!r} must look like model=input/output")
        try:
            values = [float(part) for part in parts]
        except ValueError:
            raise PriceTableError(f"price entry {item!r} has a non-numeric price") from None
        if any(not math.isfinite(value) or value < 0 for value in values):
            raise PriceTableError(f"price entry {item!r} needs finite prices >= 0")
        entries.append((model, values[0], values[1]))
    return tuple(entries)


class PriceTable:
    """Looks up a model's price: the configured entries first, then the built-in table."""

    def __init__(self, overrides: Iterable[tuple[str, float, float]] = ()) -> None:
        self._prices = dict(BUILTIN_PRICES)
        for model, input_price, output_price in overrides:
            self._prices[model] = ModelPrice(input_price, output_price)

    def price_of(self, model: str) -> ModelPrice | None:
        """The price of ``model``, or None when it is unknown (it then costs nothing)."""
        return self._prices.get(model)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """What a call of ``model`` with these token counts costs (0.0 for unknown models)."""
        price = self._prices.get(model)
        return 0.0 if price is None else price.cost(prompt_tokens, completion_tokens)
