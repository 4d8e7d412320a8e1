"""Estimated cost of a call, from a small table of list prices (USD per million tokens).

Prices change: this table is an estimate for the common OpenAI models and says None for a model
it does not know, rather than guess. A free endpoint (``EndpointConfig.free``) costs nothing.
"""

from __future__ import annotations

from .providers.base import Completion

# model prefix: (input, cached input, output) USD per 1M tokens
PRICES: dict[str, tuple[float, float, float]] = {
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4o": (2.50, 1.25, 10.00),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-5-nano": (0.05, 0.005, 0.40),
    "gpt-5-mini": (0.25, 0.025, 2.00),
    "gpt-5": (1.25, 0.125, 10.00),
    "o4-mini": (1.10, 0.275, 4.40),
    "o3": (2.00, 0.50, 8.00),
}
_BY_LENGTH = sorted(PRICES, key=len, reverse=True)


def price_of(model: str | None) -> tuple[float, float, float] | None:
    """The price row of the longest known prefix of ``model`` (dated snapshots included)."""
    if not model:
        return None
    return next((PRICES[p] for p in _BY_LENGTH if model.startswith(p)), None)


def cost_usd(completion: Completion, *, free: bool = False) -> float | None:
    """What a completion cost (0 on a ``free`` endpoint), or None when the model's price is
    unknown."""
    if free:
        return 0.0
    price = price_of(completion.resolved_model)
    if price is None:
        return None
    fresh_in, cached_in, out = price
    cached = completion.cached_tokens or 0
    prompt = max((completion.prompt_tokens or 0) - cached, 0)
    total = prompt * fresh_in + cached * cached_in + (completion.completion_tokens or 0) * out
    return round(total / 1e6, 8)
