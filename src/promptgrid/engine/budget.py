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
"""

from __future__ import annotations

import asyncio
import math

from ..errors import BudgetExceeded
from ..pricing import Pricing
from ..providers.base import Request
from ..tokens import worst_prompt_tokens

__all__ = ["Budget", "Reservation", "worst_cost"]


def worst_cost(pricing: Pricing, request: Request, *, batch: bool = False) -> float:
    """The most one attempt of ``request`` can cost (inf when it cannot be bounded): the prompt
    at one token per byte, the output at its limit (``max_tokens`` × ``n``, or the model's own
    limit), at batch prices with ``batch``."""
    price = pricing.price(request.model)
    if price is None:
        return math.inf
    output = request.max_output_tokens()
    if output is None:
        if price.max_output is None:
            return 0.0 if pricing.free else math.inf
        output = price.max_output * int(request.params.get("n") or 1)
    return price.cost(worst_prompt_tokens(request.messages), output, batch=batch)


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
                    f"the budget is spent: ${self.spent:.4f} of ${self.cap:.4f}, and the next "
                    f"call could cost up to ${worst:.4f}",
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
        case if unknown)."""
        self.reserved -= reservation.worst
        self._in_flight -= 1
        self.spent += cost
        self._settled.set()
