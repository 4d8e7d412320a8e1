"""A hard cap on a run's spend, enforced before each call is sent.

An attempt is admitted only if what the run has spent plus the worst-case cost of every attempt
on the wire, its own included, stays within the cap. The worst case is a true upper bound: the
prompt counted at one token per byte (a byte-level tokenizer never makes more) and the output
at its limit (``max_tokens`` × ``n``, or the model's own limit). So the final spend never passes
the cap, whatever the answers turn out to be.

When an attempt does not fit, it waits while other attempts are on the wire (they usually cost
less than their worst case, and their settlement frees room); when nothing is on the wire and it
still does not fit, the budget is spent: :class:`~promptgrid.errors.BudgetExceeded` stops the
run, and the cell stays pending for a resume with a higher cap.

An attempt that ends without an answer the server could have charged for (an HTTP error) gives
its reservation back; one whose fate is unknown (a timeout, a dropped connection, a garbled 200)
is counted at its worst case, since the server may have charged it.

**Usage is not believed blindly** (:func:`vet`, :func:`charged_cost`): the server reports it,
and a server can be wrong or hostile. Usage that is missing, not a whole number, negative, or
more than the request allows (completion tokens above ``max_tokens`` × ``n``, prompt tokens
above the worst case reserved for it) is recorded as unknown and charged at the request's worst
case. Any cost is kept within ``[0, worst case]`` (a server naming a dearer model in its answer
cannot charge more than was reserved), so no answer takes the spend past the cap, or back
below what was really spent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math

from ..errors import BudgetExceeded
from ..money import usd
from ..pricing import Pricing
from ..providers.base import Completion, Request
from ..tokens import count_prompt, worst_params_tokens, worst_prompt_tokens
from ..untrusted import count as token_count

__all__ = ["Budget", "Reservation", "charged_cost", "vet", "worst_cost", "worst_tokens"]


def worst_tokens(pricing: Pricing, request: Request) -> tuple[int, int | None]:
    """The most tokens one attempt of ``request`` can use: (prompt, output).

    The prompt at one token per byte of its messages and of its parameters (tools and output
    schemas are counted as prompt too); the output at its limit (``max_tokens`` × ``n``, or the
    model's own limit × ``n``), None when nothing bounds it."""
    prompt = worst_prompt_tokens(request.messages) + worst_params_tokens(request.params)
    return prompt, _worst_output(pricing, request)


def _worst_output(pricing: Pricing, request: Request) -> int | None:
    output = request.max_output_tokens()
    if output is None:
        price = pricing.price(request.model)
        if price is not None and price.max_output is not None:
            output = price.max_output * int(request.params.get("n") or 1)
    return output


def _fewest_worst_prompt(request: Request) -> int:
    """A quick lower bound of the worst case's prompt: characters, which never outnumber bytes.
    Honest usage is far below it, so the exact bound is rarely needed."""
    return count_prompt(request.messages, len)


def worst_cost(pricing: Pricing, request: Request, *, batch: bool = False) -> float:
    """The most one attempt of ``request`` can cost (inf when it cannot be bounded): its
    :func:`worst_tokens`, at batch prices with ``batch``."""
    price = pricing.price(request.model)
    if price is None:
        return math.inf
    if pricing.free:
        return 0.0
    prompt, output = worst_tokens(pricing, request)
    if output is None:
        return math.inf
    return price.cost(prompt, output, batch=batch)


def vet(pricing: Pricing, request: Request, completion: Completion) -> tuple[Completion, bool]:
    """``completion`` with its usage made unknown (None) unless it is believable, and whether
    that mattered: True when the usage of a call that is not free was missing or unbelievable.

    Believable: prompt and completion tokens both whole numbers from 0 to the request's
    :func:`worst_tokens`, cached tokens (if any) from 0 to the prompt tokens."""
    prompt, output = completion.prompt_tokens, completion.completion_tokens
    cached = completion.cached_tokens
    if _count(prompt) and _count(output) and (cached is None or _count(cached, prompt)):
        believed = _count(output, _worst_output(pricing, request)) and (
            _count(prompt, _fewest_worst_prompt(request))
            or _count(prompt, worst_tokens(pricing, request)[0])
        )
        if believed:
            return completion, False
    unknown = dataclasses.replace(
        completion, prompt_tokens=None, completion_tokens=None, cached_tokens=None,
        reasoning_tokens=None,
    )  # fmt: skip
    return unknown, not pricing.free


def charged_cost(
    pricing: Pricing, request: Request, completion: Completion, *, batch: bool = False
) -> float | None:
    """What an answer (its usage :func:`vet`-ted) is charged: the cost of its usage, kept within
    0 and the request's worst case; the worst case when its usage is unknown; None when neither
    is known (a model without a price, an unbounded request)."""
    if pricing.free:
        return 0.0
    real = pricing.cost(
        request.model, resolved=completion.resolved_model, prompt=completion.prompt_tokens,
        completion=completion.completion_tokens, cached=completion.cached_tokens, batch=batch,
    )  # fmt: skip
    price, output = pricing.price(request.model), _worst_output(pricing, request)
    if real is not None and price is not None and output is not None:
        quick = price.cost(_fewest_worst_prompt(request), output, batch=batch)
        if 0 <= real <= quick:
            return real  # below a quick lower bound of the worst case: most answers
    worst = worst_cost(pricing, request, batch=batch)
    if real is None or math.isnan(real):
        return worst if math.isfinite(worst) else None
    return min(max(real, 0.0), worst)


def _count(value: object, most: int | None = None) -> bool:
    """A count of tokens from 0 to ``most`` (None: no bound)."""
    count = token_count(value)
    return count is not None and (most is None or count <= most)


class Reservation:
    """The worst case of one attempt, held until it is settled."""

    __slots__ = ("worst",)

    def __init__(self, worst: float) -> None:
        self.worst = worst


class Budget:
    """``cap`` USD for a run that has already spent ``spent`` (earlier sessions of it)."""

    def __init__(self, cap: float, spent: float = 0.0) -> None:
        self.cap = cap
        self.spent = spent  #: settled spend: real costs, and worst cases of unknown fates
        self.reserved = 0.0  #: worst cases of the attempts on the wire
        self._in_flight = 0
        self._settled = asyncio.Event()

    async def admit(self, worst: float) -> Reservation:
        """Reserve ``worst`` USD for an attempt; wait while others may free room; raise
        :class:`BudgetExceeded` when nothing on the wire can."""
        while self.spent + self.reserved + worst > self.cap:
            if self._in_flight == 0:
                raise BudgetExceeded(
                    f"the budget is spent: {usd(self.spent)} of {usd(self.cap)}, and the next "
                    f"call could cost up to {usd(worst)}",
                    cap=self.cap,
                    spent=self.spent,
                    next_worst=worst,
                )
            self._settled.clear()
            await self._settled.wait()
        self.reserved += worst
        self._in_flight += 1
        return Reservation(worst)

    def settle(self, reservation: Reservation, cost: float) -> None:
        """The attempt is over and cost ``cost`` (0 if it certainly cost nothing, its worst
        case if unknown). A cost is kept within 0 and the reservation (NaN: the reservation):
        no answer takes the spend past the cap, nor below what was really spent."""
        self.reserved -= reservation.worst
        self._in_flight -= 1
        worst = reservation.worst
        self.spent += worst if math.isnan(cost) else min(max(cost, 0.0), worst)
        self._settled.set()

    def charge(self, spent: float) -> None:
        """The run is known to have spent at least ``spent`` (answers collected from batches,
        whose reservations were made at other prices): never lowers what was counted."""
        if spent > self.spent:
            self.spent = spent
