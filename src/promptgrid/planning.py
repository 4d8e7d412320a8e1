"""What a run would do, without doing it: calls, cache, tokens, cost and time.

Counts are arithmetic (instant for any grid). Token estimates come from rendering the grid's
distinct prompts — every one when there are at most ``SAMPLE`` of them, else an evenly spaced
sample, and the plan says so. Duplicates and cached calls need every cell's id: they are
counted by a fast walk of the grid (ids only) with batched store lookups, for grids of up to
``EXACT_LIMIT`` cells; above that they are skipped, and the plan says so.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .config import RunConfig, RunOptions, resolve
from .errors import Problem, SpecError
from .grid import cell_ids, render
from .pricing import price_of
from .spec import Experiment
from .store import STORE_NAME, Store
from .tokens import estimate_prompt_tokens, max_output_tokens

__all__ = ["EXACT_LIMIT", "SAMPLE", "Plan", "make_plan"]

#: Distinct prompts rendered for the token estimate at most.
SAMPLE = 2_000
#: Grids up to this many cells get exact duplicate and cached counts.
EXACT_LIMIT = 2_000_000


@dataclass
class Plan:
    """What a run would do: calls per axis and in total, what is cached, tokens, cost, time."""

    experiment: str
    axes: dict[str, int]
    total: int
    cached: int | None  #: None: not counted (grid above ``EXACT_LIMIT``)
    duplicates: int | None
    prompt_tokens: int  #: estimated, for every cell
    max_output_tokens: int | None  #: None: some request has no output limit
    cost_usd: float | None  #: None: some model's price is unknown
    seconds: float | None  #: at the declared limits; None: nothing bounds the run
    providers: list[str] = field(default_factory=list)
    binding: str | None = None  #: the limit that sets ``seconds`` ("openai rpm", ...)
    sampled: int | None = None  #: prompts rendered for the estimate, when a sample
    prompts: int = 0  #: distinct prompts (prompt × case × vars)

    @property
    def to_send(self) -> int:
        """Calls that would really be sent (all of them when the cache was not counted)."""
        return self.total - (self.cached or 0) - (self.duplicates or 0)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))  # IPython and Jupyter show the table, not the dataclass

    def __str__(self) -> str:
        def row(name: str, value: str) -> str:
            return f"  {name:<22} {value:>12}"

        lines = [f"experiment {self.experiment}"]
        lines += [row(name, f"{n:,}") for name, n in self.axes.items()]
        lines.append(row("total calls", f"{self.total:,}"))
        if self.cached is None:
            lines.append(row("already cached", "not counted"))
            lines.append(f"  (grids over {EXACT_LIMIT:,} cells are not walked for the cache)")
        else:
            lines.append(row("already cached", f"{self.cached:,}"))
        if self.duplicates:
            lines.append(row("duplicates in grid", f"{self.duplicates:,}"))
        lines.append(row("to send", f"{self.to_send:,}"))
        lines.append(row("prompt tokens (est.)", f"{self.prompt_tokens:,}"))
        if self.sampled is not None:
            lines.append(f"  (from a sample of {self.sampled:,} of {self.prompts:,} prompts)")
        if self.max_output_tokens is not None:
            lines.append(row("output tokens (max)", f"{self.max_output_tokens:,}"))
        if self.cost_usd is not None:
            lines.append(row("cost (est., USD)", f"{self.cost_usd:.4f}"))
        if self.seconds is not None:
            lines.append(row("time at the limits", f"{self.seconds:,.0f}s"))
            if self.binding:
                lines.append(f"  (bound by {self.binding})")
        lines.append(f"  providers: {', '.join(self.providers)}")
        return "\n".join(lines)


def make_plan(experiment: Experiment, options: RunOptions) -> Plan:
    """The plan of ``experiment`` run with ``options`` (nothing is sent or written)."""
    config = resolve(experiment, options)
    repeats = experiment.file.repeats
    # Cells per parameter combination: one per block (prompt × case × vars) and repeat.
    blocks = len(experiment.templates) * experiment.cases.count
    blocks *= math.prod(len(v) for v in experiment.vars.values())
    per_combo = blocks * repeats
    names = list(experiment.param_axes)
    axes = experiment.param_axes.values()
    combos = [dict(zip(names, v, strict=True)) for v in itertools.product(*axes)]

    tokens, sampled = _prompt_tokens(experiment, blocks)
    prompt_tokens = round(tokens.mean * experiment.total)
    output: int | None = 0
    cost: float | None = 0.0
    load: Counter[str] = Counter()  # cells per endpoint
    token_load: Counter[str] = Counter()  # tokens per endpoint
    problems: list[Problem] = []
    for combo in combos:
        model = str(combo["model"])
        endpoint = config.endpoint_for(model)
        out = max_output_tokens(combo)
        output = None if output is None or out is None else output + out * per_combo
        load[endpoint.name] += per_combo
        token_load[endpoint.name] += round((tokens.mean + (out or 0)) * per_combo)
        tpm = endpoint.limits.tpm
        if tpm and tokens.largest + (out or 0) > tpm and len(problems) < 5:
            problems.append(
                Problem(
                    f"a request to {model!r} needs about {tokens.largest + (out or 0):,} tokens, "
                    f"more than the whole tpm limit of {tpm:,} of {endpoint.name!r}: it could "
                    "never run",
                    experiment.source,
                    path="limits.tpm",
                    hint="raise tpm, lower max_tokens, or shorten the prompt",
                )
            )
        price = (0.0, 0.0, 0.0) if endpoint.free else price_of(model)
        if cost is not None and price is not None:
            cost += (tokens.mean * per_combo * price[0] + (out or 0) * per_combo * price[2]) / 1e6
        else:
            cost = None
    if problems:
        raise SpecError(problems)

    duplicates: int | None = None
    cached: int | None = None
    if experiment.total <= EXACT_LIMIT:
        duplicates, cached = _walk_counts(config)
    to_send = experiment.total - (cached or 0) - (duplicates or 0)
    to_send_share = to_send / max(experiment.total, 1)
    seconds, binding = _duration(config, load, token_load, to_send_share)
    return Plan(
        experiment=experiment.name,
        axes=experiment.axes,
        total=experiment.total,
        cached=cached,
        duplicates=duplicates,
        prompt_tokens=prompt_tokens,
        max_output_tokens=output,
        cost_usd=None if cost is None else cost * to_send_share,
        seconds=seconds,
        providers=sorted(config.endpoints),
        binding=binding,
        sampled=sampled,
        prompts=blocks,
    )


@dataclass(frozen=True)
class _Tokens:
    mean: float  # estimated prompt tokens per cell
    largest: int  # the largest prompt seen


def _prompt_tokens(experiment: Experiment, blocks: int) -> tuple[_Tokens, int | None]:
    """Estimate prompt tokens per cell from every block, or from an evenly spaced sample."""
    wanted: set[int] | None = None
    if blocks > SAMPLE:
        step = blocks / SAMPLE
        wanted = {int(i * step) for i in range(SAMPLE)}
    estimates = [estimate_prompt_tokens(m) for m in _rendered(experiment, wanted)]
    if not estimates:
        return _Tokens(0.0, 0), None
    sampled = len(estimates) if wanted is not None else None
    return _Tokens(sum(estimates) / len(estimates), max(estimates)), sampled


def _rendered(experiment: Experiment, wanted: set[int] | None) -> Iterator[Any]:
    """The messages of the blocks numbered in ``wanted`` (all when None), in grid order."""
    var_names = list(experiment.vars)
    per_case = math.prod(len(v) for v in experiment.vars.values())
    per_prompt = experiment.cases.count * per_case
    number = 0
    for prompt, templates in experiment.templates.items():
        if wanted is not None and not any(number <= w < number + per_prompt for w in wanted):
            number += per_prompt
            continue
        for case in experiment.iter_cases():
            if wanted is not None and not any(number <= w < number + per_case for w in wanted):
                number += per_case
                continue
            for values in itertools.product(*experiment.vars.values()):
                if wanted is None or number in wanted:
                    context = {**case, **dict(zip(var_names, values, strict=True))}
                    yield render(prompt, templates, context, number, experiment)
                number += 1


def _walk_counts(config: RunConfig) -> tuple[int, int]:
    """Duplicates in the grid and distinct cells already answered in the store."""
    seen: set[str] = set()
    total = 0
    for cell_id in cell_ids(config):
        seen.add(cell_id)
        total += 1
    cached = 0
    path = config.results_dir / STORE_NAME
    if config.use_cache and path.exists():
        with Store.in_dir(config.results_dir, readonly=True) as store:
            cached = store.count_answered(seen)
    return total - len(seen), cached


def _duration(
    config: RunConfig, load: Counter[str], token_load: Counter[str], share: float
) -> tuple[float | None, str | None]:
    """Seconds at the declared limits (endpoints run side by side) and the binding limit."""
    best: tuple[float, str] | None = None
    for name, endpoint in config.endpoints.items():
        limits = endpoint.limits
        bounds = []
        if limits.rpm:
            bounds.append((load[name] * share / limits.rpm * 60, f"{name} rpm"))
        if limits.tpm:
            bounds.append((token_load[name] * share / limits.tpm * 60, f"{name} tpm"))
        for bound in bounds:
            if best is None or bound[0] > best[0]:
                best = bound
    return (None, None) if best is None else best
