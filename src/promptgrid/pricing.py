"""What calls cost: a dated table of OpenAI list prices, the file's own prices over it, and the
arithmetic of a call's cost — real, expected and worst case — in one place.

Prices are USD per million tokens. Cached input tokens (``prompt_tokens_details.cached_tokens``)
are priced as cached input; the Batch API halves input and output unless a price says otherwise.
A model the table does not know, on an endpoint that is not free, has no price: its rows get an
empty ``cost_usd`` and the plan and the run warn once, naming the model and how to price it —
never a silent 0 or a silent NaN.

The table is an estimate dated ``AS_OF``; prices change. ``pricing:`` in the experiment file
overrides or extends it per model, and ``pricing: free`` on a provider prices its calls at 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["AS_OF", "FREE", "TABLE", "Price", "Pricing", "table_price"]

#: When the table's prices were read from OpenAI's pricing page.
AS_OF = "2025-08-07"


@dataclass(frozen=True)
class Price:
    """A model's prices in USD per million tokens, and its own output limit.

    ``cached_input`` defaults to ``input``; ``batch_input``/``batch_output`` to half of
    ``input``/``output``. ``max_output`` is the most a call may answer when a request sets no
    limit (the worst case of an unbounded request), if known.
    """

    input: float
    output: float
    cached_input: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None
    max_output: int | None = None

    def cost(self, prompt: int, completion: int, *, cached: int = 0, batch: bool = False) -> float:
        """USD for ``prompt`` input tokens (``cached`` of them cached) and ``completion``
        output tokens (reasoning included, as billed)."""
        fresh_in = self.input if not batch else _or(self.batch_input, self.input / 2)
        cached_in = _or(self.cached_input, self.input)
        if batch:
            cached_in = cached_in / 2
        out = self.output if not batch else _or(self.batch_output, self.output / 2)
        cached = min(max(cached, 0), max(prompt, 0))
        total = (prompt - cached) * fresh_in + cached * cached_in + completion * out
        return round(total / 1e6, 10)


#: The price of a call that costs nothing (echo, ``pricing: free``).
FREE = Price(0.0, 0.0, 0.0, 0.0, 0.0)

#: OpenAI's list prices (standard tier), USD per 1M tokens: input, cached input, output; the
#: Batch API halves input and output. ``max_output``: the model's output-token limit.
TABLE: Mapping[str, Price] = {
    "gpt-5": Price(1.25, 10.00, cached_input=0.125, max_output=128_000),
    "gpt-5-mini": Price(0.25, 2.00, cached_input=0.025, max_output=128_000),
    "gpt-5-nano": Price(0.05, 0.40, cached_input=0.005, max_output=128_000),
    "gpt-4.1": Price(2.00, 8.00, cached_input=0.50, max_output=32_768),
    "gpt-4.1-mini": Price(0.40, 1.60, cached_input=0.10, max_output=32_768),
    "gpt-4.1-nano": Price(0.10, 0.40, cached_input=0.025, max_output=32_768),
    "gpt-4o": Price(2.50, 10.00, cached_input=1.25, max_output=16_384),
    "gpt-4o-mini": Price(0.15, 0.60, cached_input=0.075, max_output=16_384),
    "o3": Price(2.00, 8.00, cached_input=0.50, max_output=100_000),
    "o3-mini": Price(1.10, 4.40, cached_input=0.55, max_output=100_000),
    "o4-mini": Price(1.10, 4.40, cached_input=0.275, max_output=100_000),
    "o1": Price(15.00, 60.00, cached_input=7.50, max_output=100_000),
    "gpt-4-turbo": Price(10.00, 30.00, max_output=4_096),
    "gpt-3.5-turbo": Price(0.50, 1.50, max_output=4_096),
}
# A dated snapshot of a model ("gpt-4o-mini-2024-07-18") has the model's price; nothing else
# does ("gpt-5.1" is not "gpt-5", "gpt-4o-mini" is not "gpt-4o").
_SNAPSHOT = re.compile(r"(.+?)-\d{4}-\d{2}-\d{2}")


def table_price(model: str | None) -> Price | None:
    """The table's price of ``model`` or of the model a dated snapshot name belongs to."""
    if not model:
        return None
    if model in TABLE:
        return TABLE[model]
    snapshot = _SNAPSHOT.fullmatch(model)
    return TABLE.get(snapshot.group(1)) if snapshot else None


@dataclass(frozen=True)
class Pricing:
    """How one endpoint's calls are priced: all free, or per model — the experiment file's own
    prices (``overrides``) over the table."""

    free: bool = False
    overrides: Mapping[str, Price] = field(default_factory=dict)

    def price(self, model: str | None, resolved: str | None = None) -> Price | None:
        """The price of a call to ``model`` (answered by ``resolved``), or None if unknown."""
        if self.free:
            return FREE
        for name in (model, resolved):
            if name and name in self.overrides:
                return self.overrides[name]
        return table_price(resolved) or table_price(model)

    def cost(
        self,
        model: str,
        *,
        resolved: str | None,
        prompt: int | None,
        completion: int | None,
        cached: int | None,
        batch: bool = False,
    ) -> float | None:
        """A call's cost from its real usage; None when the model has no price (or, for a call
        that is not free, the server reported no usage)."""
        price = self.price(model, resolved)
        if price is None:
            return None
        if price == FREE:
            return 0.0
        if prompt is None and completion is None:
            return None
        return price.cost(prompt or 0, completion or 0, cached=cached or 0, batch=batch)


def _or(value: float | None, default: float) -> float:
    return default if value is None or math.isnan(value) else value
