"""What a run would do, without doing it: calls, cache, tokens, cost and time.

Counts are arithmetic (instant for any grid). Token counts come from rendering the grid's
distinct prompts — every one when there are at most ``SAMPLE`` of them, else an evenly spaced
sample, and the plan says so — counted by an offline tokenizer when one is on disk (tiktoken's
``o200k_base``), else estimated at 4 characters a token; the plan says which. Duplicates and
cached calls need every cell's id: they are counted by a fast walk of the grid (ids only) with
batched store lookups, for grids of up to ``EXACT_LIMIT`` cells; above that they are skipped,
and the plan says so. A shard's plan (``--shard I/N``) walks the grid keeping the shard's cells:
every figure is its share.

Cost is a range, for the calls still to send:

* **worst case** — every prompt at its upper bound (a token per byte of its messages and of its
  parameters, whose tools and schemas are billed as prompt) and every answer at its output limit
  (``max_tokens`` × ``n``, or the model's own limit): what ``--max-cost`` guards;
* **expected** — prompts as counted, answers as long as the stored answers of the same model on
  the same endpoint, or, with none stored yet, half their output limit.

Judges (``scores:`` with ``judge:``) add one call per judge and answer still to make. The answer
they grade is not known yet: their prompts count it at the graded calls' expected length (worst
case: their output limit at 4 bytes a token), and their own output like any call's.

Time is what the declared limits allow, endpoints running side by side: ``rpm``, ``tpm`` (each
request charged its prompt and its output limit up front, as OpenAI does) and the concurrency
(calls in flight × the stored answers' mean latency, once there are some); the limit that binds
is named.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import Host, RunConfig, RunOptions, resolve
from .errors import Problem, SpecError
from .grid import cell_ids, render
from .money import usd
from .race.layout import Layout
from .race.options import raced, refuse_batches
from .race.pilot import pilot_share
from .race.plan import RacePlan
from .spec import Experiment
from .store import STORE_NAME, Store
from .tokens import (
    DEFAULT_OUTPUT_TOKENS,
    max_output_tokens,
    prompt_counter,
    worst_params_tokens,
    worst_prompt_tokens,
)

__all__ = ["EXACT_LIMIT", "SAMPLE", "Plan", "make_plan"]

#: Distinct prompts rendered for the token counts at most.
SAMPLE = 2_000
#: Grids up to this many cells get exact duplicate and cached counts.
EXACT_LIMIT = 2_000_000


@dataclass
class Plan:
    """What a run would do: calls, cache, tokens, cost and time (see the module docstring).

    Token and cost figures are for the calls still to send (not cached, not duplicates).
    ``None`` means unknown: ``cost_*`` when a model has no price (``unpriced``), the output
    figures when a call has no output limit, ``seconds`` when no limit bounds the run.
    """

    experiment: str
    axes: dict[str, int]
    total: int
    cached: int | None  #: None: not counted (grid above ``EXACT_LIMIT``)
    duplicates: int | None
    prompt_tokens: int
    output_tokens_max: int | None
    output_tokens_expected: int | None
    cost_expected_usd: float | None
    cost_worst_usd: float | None
    seconds: float | None
    providers: list[str] = field(default_factory=list)
    binding: str | None = None  #: the limit that sets ``seconds`` ("openai rpm", ...)
    tokenizer: str = "estimate: 4 characters a token"
    judge_calls: int = 0  #: calls of judges, one per judge and answer still to make
    sampled: int | None = None  #: prompts rendered for the counts, when a sample
    prompts: int = 0  #: distinct prompts (prompt × case × vars)
    expected_basis: list[str] = field(default_factory=list)  #: how output was expected
    unpriced: list[str] = field(default_factory=list)  #: models without a price
    max_cost_usd: float | None = None  #: the budget, if any
    warnings: list[str] = field(default_factory=list)
    #: Providers whose calls go through their Batch API: priced at batch prices, and left out
    #: of ``seconds`` (a batch answers within 24 h, whatever the limits).
    batch: list[str] = field(default_factory=list)
    #: Where the calls go: each endpoint's URL and the environment variable of its key.
    hosts: list[Host] = field(default_factory=list)
    #: The ``python:`` scorers the run imports and calls (code run in this process).
    python_scorers: list[str] = field(default_factory=list)
    #: With a race: its calls and cost, at least, expected (from a stored full-grid run) and
    #: at most (the figures above are the full grid's: a race's worst case).
    race: RacePlan | None = None

    #: The shard planned (``I/N``): ``total`` and every figure are its share of the grid's
    #: ``grid_total`` cells (an even share, when the grid is too large to walk).
    shard: str | None = None
    grid_total: int | None = None

    @property
    def to_send(self) -> int:
        """Calls that would really be sent (all of them when the cache was not counted)."""
        return self.total - (self.cached or 0) - (self.duplicates or 0)

    @property
    def fits_budget(self) -> bool | None:
        """Whether the worst case stays within the budget (None: no budget, or unknown)."""
        if self.max_cost_usd is None or self.cost_worst_usd is None:
            return None
        return self.cost_worst_usd <= self.max_cost_usd

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain values (``promptgrid plan --json``)."""
        return {**asdict(self), "to_send": self.to_send, "fits_budget": self.fits_budget}

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        from .terminal import visible

        printer.text(visible(str(self)))  # IPython and Jupyter show the table, not the dataclass

    def __str__(self) -> str:
        def row(name: str, value: str) -> str:
            return f"  {name:<24} {value:>14}"

        def money(value: float | None) -> str:
            return "unknown" if value is None else usd(value)

        lines = [f"experiment {self.experiment}"]
        lines += [row(name, f"{n:,}") for name, n in self.axes.items()]
        if self.shard is not None:
            lines.append(row(f"shard {self.shard} calls", f"{self.total:,}"))
            lines.append(f"  (its share of the grid's {self.grid_total or 0:,} calls)")
        else:
            lines.append(row("total calls", f"{self.total:,}"))
        if self.cached is None:
            lines.append(row("already cached", "not counted"))
            lines.append(f"  (grids over {EXACT_LIMIT:,} cells are not walked for the cache)")
        else:
            lines.append(row("already cached", f"{self.cached:,}"))
        if self.duplicates:
            lines.append(row("duplicates in grid", f"{self.duplicates:,}"))
        lines.append(row("to send", f"{self.to_send:,}"))
        if self.judge_calls:
            lines.append(row("judge calls", f"{self.judge_calls:,}"))
        lines.append(row("prompt tokens", f"{self.prompt_tokens:,}"))
        sample = (
            f", a sample of {self.sampled:,} of {self.prompts:,} prompts" if self.sampled else ""
        )
        lines.append(f"  ({self.tokenizer}{sample})")
        out_max = "unbounded" if self.output_tokens_max is None else f"{self.output_tokens_max:,}"
        lines.append(row("output tokens (max)", out_max))
        if self.output_tokens_expected is not None:
            lines.append(row("output tokens (expected)", f"{self.output_tokens_expected:,}"))
            lines += [f"  ({basis})" for basis in self.expected_basis]
        lines.append(row("cost expected", money(self.cost_expected_usd)))
        lines.append(row("cost worst case", money(self.cost_worst_usd)))
        if self.batch:
            lines.append(f"  (batch prices for {', '.join(self.batch)}: answers within 24 h)")
        if self.unpriced:
            lines.append(f"  (no price for {', '.join(self.unpriced)}: see the warning)")
        if self.max_cost_usd is not None:
            verdict = {True: "the worst case fits", False: "may stop the run before the end",
                       None: "the worst case is unknown"}[self.fits_budget]  # fmt: skip
            lines.append(row("budget", money(self.max_cost_usd)))
            lines.append(f"  ({verdict})")
        if self.race is not None:
            lines += self.race.lines(row)
        if self.seconds is not None:
            lines.append(row("time at the limits", _duration(self.seconds)))
            if self.binding:
                lines.append(f"  (bound by {self.binding})")
        lines.append(f"  providers: {', '.join(self.providers)}")
        lines.append("  calls go to:")
        lines += [f"    {host}" for host in self.hosts]
        if self.python_scorers:
            lines.append(f"  python scorers run as code here: {', '.join(self.python_scorers)}")
        return "\n".join(lines)


def make_plan(experiment: Experiment, options: RunOptions) -> Plan:
    """The plan of ``experiment`` run with ``options`` (nothing is sent or written)."""
    experiment = raced(experiment, options.race)
    config = resolve(experiment, options)
    refuse_batches(config)
    config.warn()
    repeats = experiment.file.repeats
    blocks = len(experiment.templates) * experiment.cases.count
    blocks *= math.prod(len(v) for v in experiment.vars.values())
    per_combo = blocks * repeats  # cells of each parameter combination
    prompt, sampled, tokenizer = _prompt_counts(experiment, blocks)

    duplicates: int | None = None
    cached: int | None = None
    stats: dict[tuple[str, str], _Stats] = {}
    total = experiment.total
    if config.shard is not None:  # an even share, unless the walk below counts it
        total = round(total / config.shard.count)
    if experiment.total <= EXACT_LIMIT:
        total, duplicates, cached, stats = _walk(config)
    share = (total - (cached or 0) - (duplicates or 0)) / max(experiment.total, 1)
    calls_per_combo = per_combo * share  # still to send

    totals = _Totals()
    problems: list[Problem] = []
    for combo in experiment.param_combos():
        model = str(combo["model"])
        endpoint = config.endpoint_for(model)
        price = endpoint.pricing.price(model)
        limit = max_output_tokens(combo)
        if limit is None and price is not None and price.max_output is not None:
            limit = price.max_output * int(combo.get("n") or 1)
        seen = stats.get((endpoint.endpoint_id, model))
        if seen is not None and seen.completion is not None:
            expected = seen.completion
            totals.basis.add(f"{model}: as long as its {seen.count:,} stored answers")
        elif limit is not None:
            expected = limit / 2
            totals.basis.add(f"{model}: half the output limit (no stored answers yet)")
        else:
            expected = None
        params = {k: v for k, v in combo.items() if k != "model"}
        worst = prompt.worst + worst_params_tokens(params)  # as the budget reserves it
        totals.add(model, price, calls_per_combo, prompt.mean, worst, limit, expected,
                   batch=endpoint.batch is not None)  # fmt: skip
        totals.calls[endpoint.name] += calls_per_combo
        charged = prompt.mean + (max_output_tokens(combo) or DEFAULT_OUTPUT_TOKENS)
        totals.tokens[endpoint.name] += charged * calls_per_combo
        if seen is not None and seen.latency is not None:
            totals.latency[endpoint.name].append(seen.latency)
        tpm = endpoint.limits.tpm
        need = prompt.largest + (max_output_tokens(combo) or 0)
        if tpm and need > tpm and len(problems) < 5:
            problems.append(
                Problem(
                    f"a request to {model!r} needs about {need:,} tokens, more than the whole "
                    f"tpm limit of {tpm:,} of {endpoint.name!r}: it could never run",
                    experiment.source,
                    path="limits.tpm",
                    hint="raise tpm, lower max_tokens, or shorten the prompt",
                )
            )
    if problems:
        raise SpecError(problems)
    judge_calls = _judges(config, totals, round(experiment.total * share))
    seconds, binding = _time(config, totals)
    return Plan(
        experiment=experiment.name,
        axes=experiment.axes,
        total=total,
        cached=cached,
        duplicates=duplicates,
        prompt_tokens=round(prompt.mean * per_combo * share * _combos(experiment)),
        output_tokens_max=None if totals.output_max is None else round(totals.output_max),
        output_tokens_expected=(
            None if totals.output_expected is None else round(totals.output_expected)
        ),
        cost_expected_usd=totals.cost_expected,
        cost_worst_usd=totals.cost_worst,
        seconds=seconds,
        providers=sorted(config.endpoints),
        binding=binding,
        tokenizer=tokenizer,
        judge_calls=judge_calls,
        sampled=sampled,
        prompts=blocks,
        expected_basis=sorted(totals.basis),
        unpriced=sorted({model for model, _ in config.unpriced}),
        max_cost_usd=config.max_cost,
        warnings=config.warnings,
        batch=config.batch_endpoints,
        hosts=config.hosts,
        python_scorers=config.python_scorers,
        race=None if config.race is None else RacePlan.of(
            config.race, Layout.of(experiment, config.race.factor), totals.cost_expected,
            totals.cost_worst, pilot_share(options.results_dir, experiment.name, config.race),
        ),
        shard=None if config.shard is None else str(config.shard),
        grid_total=None if config.shard is None else experiment.total,
    )  # fmt: skip


@dataclass
class _Totals:
    """Sums over the parameter combinations; ``None`` once a term is unknown."""

    output_max: float | None = 0.0
    output_expected: float | None = 0.0
    cost_expected: float | None = 0.0
    cost_worst: float | None = 0.0
    basis: set[str] = field(default_factory=set)
    calls: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    tokens: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    latency: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, model: str, price: Any, calls: float, prompt: float, worst_prompt: float,
            limit: float | None, expected: float | None, *,
            batch: bool = False) -> None:  # fmt: skip
        self.output_max = _plus(self.output_max, None if limit is None else limit * calls)
        self.output_expected = _plus(
            self.output_expected, None if expected is None else expected * calls
        )
        if price is None:
            self.cost_expected = self.cost_worst = None
            return
        if expected is not None and self.cost_expected is not None:
            self.cost_expected += price.cost(
                round(prompt * calls), round(expected * calls), batch=batch
            )
        else:
            self.cost_expected = None
        if limit is not None and self.cost_worst is not None:
            self.cost_worst += price.cost(
                round(worst_prompt * calls), round(limit * calls), batch=batch
            )
        else:
            self.cost_worst = None


def _judges(config: RunConfig, totals: _Totals, answers: int) -> int:
    """Add the judges' calls to ``totals`` (one per judge and answer to make); their number."""
    if not config.judges or not answers:
        return 0
    from .scoring.judge import judge_request
    from .tokens import estimate_prompt_tokens

    experiment = config.experiment
    rows = experiment.cases.rows()
    try:
        first = next(rows, {})
    finally:
        rows.close()  # a case file: closed now, not when collected
    context = {name: values[0] for name, values in experiment.param_axes.items()}
    context.update({**first, **{k: v[0] for k, v in experiment.vars.items()}})
    context.update(answer="", prompt="", messages=[])
    answer = None if totals.output_expected is None else totals.output_expected / answers
    answer_max = None if totals.output_max is None else totals.output_max / answers
    for score in experiment.scores:
        if score.judge is None:
            continue
        endpoint = config.endpoints[config.judges[score.name]]
        request = judge_request(score.judge, endpoint.endpoint_id, context)
        model = score.judge.model
        price = endpoint.pricing.price(model)
        limit = request.max_output_tokens()
        if limit is None and price is not None and price.max_output is not None:
            limit = price.max_output
        prompt = estimate_prompt_tokens(request.messages) + (answer or 0)
        worst = (
            worst_prompt_tokens(request.messages) + worst_params_tokens(request.params)
            + 4 * (answer_max or 0)
        )  # fmt: skip
        expected = None if limit is None else limit / 2
        if limit is not None:
            totals.basis.add(f"{model} (judge): half the output limit")
        totals.add(model, price, answers, prompt, worst, limit, expected)
        if answer_max is None:
            totals.cost_worst = None  # the graded answers are unbounded: so are these prompts
        totals.calls[endpoint.name] += answers
        totals.tokens[endpoint.name] += (prompt + (limit or DEFAULT_OUTPUT_TOKENS)) * answers
    return answers * len(config.judges)


def _plus(total: float | None, value: float | None) -> float | None:
    return None if total is None or value is None else total + value


def _combos(experiment: Experiment) -> int:
    return math.prod(len(v) for v in experiment.param_axes.values())


@dataclass(frozen=True)
class _Prompts:
    mean: float  # tokens per cell
    worst: float  # upper bound per cell (a token per byte)
    largest: int  # the largest prompt seen


def _prompt_counts(experiment: Experiment, blocks: int) -> tuple[_Prompts, int | None, str]:
    """Prompt tokens per cell from every block, or from an evenly spaced sample."""
    wanted: set[int] | None = None
    if blocks > SAMPLE:
        step = blocks / SAMPLE
        wanted = {int(i * step) for i in range(SAMPLE)}
    name, count = prompt_counter()
    counted, worst = [], []
    for messages in _rendered(experiment, wanted):
        counted.append(count(messages))
        worst.append(worst_prompt_tokens(messages))
    if not counted:
        return _Prompts(0.0, 0.0, 0), None, name
    sampled = len(counted) if wanted is not None else None
    mean = sum(counted) / len(counted)
    return _Prompts(mean, sum(worst) / len(worst), max(counted)), sampled, name


def _rendered(experiment: Experiment, wanted: set[int] | None) -> Iterator[Any]:
    """The messages of the blocks numbered in ``wanted`` (all when None), in grid order. A
    sample's blocks are reached by number (their var values decoded from it), so a case row's
    other var combinations are not walked."""
    import itertools

    var_names = list(experiment.vars)
    axes = list(experiment.vars.values())
    per_case = math.prod(len(v) for v in axes)
    per_prompt = experiment.cases.count * per_case
    ordered = None if wanted is None else sorted(wanted)

    def within(start: int, stop: int) -> list[int]:  # the wanted blocks in [start, stop)
        assert ordered is not None
        return ordered[bisect.bisect_left(ordered, start) : bisect.bisect_left(ordered, stop)]

    number = 0
    for prompt, templates in experiment.templates.items():
        if ordered is not None and not within(number, number + per_prompt):
            number += per_prompt
            continue
        for case in experiment.iter_cases():
            combos: Iterable[tuple[Any, ...]]
            if ordered is None:
                combos = itertools.product(*axes)
                numbers: Iterable[int] = range(number, number + per_case)
            else:
                numbers = within(number, number + per_case)
                combos = (_nth(axes, n - number) for n in numbers)
            for n, values in zip(numbers, combos, strict=True):
                context = {**case, **dict(zip(var_names, values, strict=True))}
                yield render(prompt, templates, context, n, experiment)
            number += per_case


def _nth(axes: Sequence[Sequence[Any]], n: int) -> tuple[Any, ...]:
    """The ``n``-th combination of ``itertools.product(*axes)`` (the last axis fastest)."""
    values = []
    for axis in reversed(axes):
        n, at = divmod(n, len(axis))
        values.append(axis[at])
    return tuple(reversed(values))


@dataclass(frozen=True)
class _Stats:
    count: int
    completion: float | None  # mean completion tokens of stored answers
    latency: float | None  # mean seconds of the calls that made them


def _walk(config: RunConfig) -> tuple[int, int, int, dict[tuple[str, str], _Stats]]:
    """Cells in the grid (in the run's shard), duplicates among them, distinct cells already
    answered in the store, and what stored answers say of each (endpoint, model): their
    count, mean length and latency."""
    seen: set[str] = set()
    total = 0
    for cell_id in cell_ids(config):
        seen.add(cell_id)
        total += 1
    cached = 0
    stats: dict[tuple[str, str], _Stats] = {}
    if (config.results_dir / STORE_NAME).exists():
        with Store.in_dir(config.results_dir, readonly=True) as store:
            if config.use_cache:
                cached = store.count_answered(seen)
            stats = {key: _Stats(*values) for key, values in store.answer_stats().items()}
    return total, total - len(seen), cached, stats


def _time(config: RunConfig, totals: _Totals) -> tuple[float | None, str | None]:
    """Seconds at the declared limits (endpoints run side by side) and the binding limit."""
    best: tuple[float, str] | None = None
    for name, endpoint in config.endpoints.items():
        if endpoint.batch is not None and name not in config.judges.values():
            continue  # its calls are the provider's to schedule, within 24 h
        limits = endpoint.limits
        calls = totals.calls[name]
        bounds = []
        if limits.rpm:
            bounds.append((calls / limits.rpm * 60, f"{name} rpm ({limits.rpm:g}/min)"))
        if limits.tpm:
            tokens = totals.tokens[name]
            bounds.append((tokens / limits.tpm * 60, f"{name} tpm ({limits.tpm:,}/min)"))
        latencies = totals.latency[name]
        slots = limits.max_concurrency or config.concurrency
        if latencies:
            latency = sum(latencies) / len(latencies)
            bounds.append(
                (calls / slots * latency, f"{name} concurrency ({slots} × {latency:.2f} s)")
            )
        for bound in bounds:
            if best is None or bound[0] > best[0]:
                best = bound
    return (None, None) if best is None else best


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"
