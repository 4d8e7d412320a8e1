"""The grid: every call an experiment makes, generated lazily in a stable order.

Order (outermost first): prompts in file order, then case rows in file order, then each
``vars`` axis in file order, then each list-valued parameter in file order, then the repeat
index. Cell ``index`` counts from 0 in that order; result tables keep it.

Each cell carries a content hash of the full request — endpoint, API kind, model (the Azure
deployment when one is mapped), rendered messages (images included, as the data URLs sent),
every parameter and the repeat index — as canonical JSON (sorted keys, compact separators;
:func:`request_key`). That ``cell_id`` keys the cache, resume and de-duplication: two cells with
the same id are the same request and are sent once. The API kind enters the hash only when it
is not ``chat``, so chat requests keep the ids earlier versions gave them (and their cache).

A run of one shard (``--shard I/N``, see ``shards``) walks the same grid and keeps the cells
whose hash falls in its shard: indexes stay those of the whole grid.

Endpoints are chosen by model, so :func:`expand` can walk one endpoint's share of the grid
alone (the model axis restricted to its models): each endpoint's workers pull from their own
lazy stream, a paused endpoint never holds up another, and no cell is built or hashed twice.
Only the rendering of a prompt is repeated, once per endpoint that shares it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Collection, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .providers.base import Request
from .shards import shard_of

if TYPE_CHECKING:
    from .config import RunConfig
    from .spec import Experiment
    from .spec.messages import MessageTemplate


@dataclass(frozen=True, slots=True)
class Cell:
    """One call of the grid."""

    index: int
    prompt: str
    vars: Mapping[str, Any]
    params: Mapping[str, Any]
    repeat: int
    endpoint: str  #: the endpoint's name (a provider name)
    request: Request
    cell_id: str
    score: str | None = None  #: a judge's cell: the score it decides for cell ``index``


#: The canonical JSON the hash is taken of (one encoder for every call: building it per call
#: cost as much as the encoding).
_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode
_string = json.JSONEncoder(ensure_ascii=False).encode  # a str as JSON, as _dumps writes it


def _messages_json(messages: tuple[dict[str, Any], ...]) -> str:
    """``_dumps(messages)``, written by hand for plain messages (a role and a text content,
    the common case: 3x faster, which a plan of a million cells feels)."""
    parts = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if len(message) != 2 or type(role) is not str or type(content) is not str:
            return _dumps(messages)
        parts.append(f'{{"content":{_string(content)},"role":{_string(role)}}}')
    return f"[{','.join(parts)}]"


def request_key(request: Request, repeat: int) -> str:
    """The content hash of a request (the ``cell_id``): the definition :func:`expand` follows."""
    payload: dict[str, Any] = {"api": request.api} if request.api != "chat" else {}
    payload |= {
        "endpoint": request.endpoint,
        "model": request.model,
        "messages": request.messages,
        "params": request.params,
        "repeat": repeat,
    }
    return hashlib.sha256(_dumps(payload).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _Combo:
    """One combination of parameter values, with what every cell of it shares."""

    number: int  # its place among the parameter combinations
    params: dict[str, Any]  # every parameter, model included (the table's columns)
    sent: dict[str, Any]  # what is sent besides the model
    model: str  # the model sent (an Azure deployment, when one is mapped)
    endpoint: str
    suffix: str  # the canonical JSON of model and params, for the hash


def _combos(config: RunConfig) -> list[_Combo]:
    experiment = config.experiment
    names = list(experiment.param_axes)
    out = []
    for number, values in enumerate(itertools.product(*experiment.param_axes.values())):
        params = dict(zip(names, values, strict=True))
        endpoint = config.routes[str(params["model"])]
        model = config.endpoints[endpoint].model_sent(str(params["model"]))
        sent = {k: v for k, v in params.items() if k != "model"}
        suffix = f'"model":{_dumps(model)},"params":{_dumps(sent)},"repeat":'
        out.append(_Combo(number, params, sent, model, endpoint, suffix))
    return out


def expand(
    config: RunConfig, endpoint: str | None = None, skip: Container[int] = ()
) -> Iterator[Cell]:
    """Yield the grid's cells lazily, in grid order (of the run's shard only, if it has one).

    ``endpoint``: only the cells routed to that endpoint. ``skip``: cell indexes to leave out
    (done already); a block of cells all skipped is not even rendered.
    """
    for index, prompt, context, messages, combo, repeat, cell_id in _walk(config, endpoint, skip):
        yield _cell(config, index, prompt, context, messages, combo, repeat, cell_id)


def _cell(
    config: RunConfig,
    index: int,
    prompt: str,
    context: Mapping[str, Any],
    messages: tuple[dict[str, Any], ...],
    combo: _Combo,
    repeat: int,
    cell_id: str,
) -> Cell:
    endpoint = config.endpoints[combo.endpoint]
    request = Request(endpoint.endpoint_id, combo.model, messages, combo.sent, endpoint.api)
    return Cell(index, prompt, context, combo.params, repeat, combo.endpoint, request, cell_id)


def expand_only(config: RunConfig, endpoint: str | None, cells: Collection[int]) -> Iterator[Cell]:
    """Yield only ``cells`` (indexes) of the grid, in grid order; the case rows they need are
    read in one pass first, and the others are not read again per prompt (a race's round
    wants a few cells spread over the whole grid)."""
    wanted = set(cells)
    if not wanted:
        return
    experiment = config.experiment
    per_case = math.prod(len(v) for v in experiment.vars.values())
    per_case *= math.prod(len(v) for v in experiment.param_axes.values()) * experiment.file.repeats
    numbers = {(index // per_case) % experiment.cases.count for index in wanted}
    rows = {n: row for n, row in enumerate(experiment.iter_cases()) if n in numbers}
    for index, prompt, context, messages, combo, repeat, cell_id in _walk(
        config, endpoint, _NotIn(wanted), rows
    ):
        yield _cell(config, index, prompt, context, messages, combo, repeat, cell_id)


class _NotIn:
    """Every cell index but ``wanted`` (a ``skip``)."""

    def __init__(self, wanted: Container[int]) -> None:
        self.wanted = wanted

    def __contains__(self, index: object) -> bool:
        return index not in self.wanted


def cell_ids(config: RunConfig, endpoint: str | None = None) -> Iterator[str]:
    """Only the ``cell_id`` of each cell, in grid order (what a plan needs, faster); of the
    run's shard only, if it has one."""
    for *_, cell_id in _walk(config, endpoint, ()):
        yield cell_id


_Walked = tuple[int, str, dict[str, Any], tuple[dict[str, Any], ...], _Combo, int, str]


def _walk(
    config: RunConfig,
    endpoint: str | None,
    skip: Container[int],
    rows: Mapping[int, dict[str, Any]] | None = None,
) -> Iterator[_Walked]:
    """The grid, in order: (index, prompt, context, messages, combo, repeat, cell_id). Each
    block (a prompt and one row of case and var values) is rendered once; each cell's hash
    continues the block's hashed prefix (the same bytes :func:`request_key` hashes).
    ``rows``: the only case rows (by number) that have cells not in ``skip``; the case file
    is then not read."""
    experiment = config.experiment
    combos = _combos(config)
    if endpoint is not None:
        combos = [c for c in combos if c.endpoint == endpoint]
    heads = {  # the hash's opening: the API kind (unless chat) and the endpoint
        name: (f'{{"api":{_dumps(e.api)},' if e.api != "chat" else "{")
        + f'"endpoint":{_dumps(e.endpoint_id)},'
        for name, e in config.endpoints.items()
    }
    repeats = experiment.file.repeats
    shard = config.shard
    # The hash's closing bytes, per combination and repeat: built once, not once per cell.
    tails = [[f"{c.suffix}{r}}}".encode() for r in range(repeats)] for c in combos]
    block = math.prod(len(v) for v in experiment.param_axes.values()) * repeats
    var_names = list(experiment.vars)
    number = 0  # of the block: a prompt, a case row and a combination of var values
    per_case = math.prod(len(v) for v in experiment.vars.values())
    for prompt, templates in experiment.templates.items():
        cases = (
            experiment.iter_cases() if rows is None
            else (rows.get(n) for n in range(experiment.cases.count))
        )  # fmt: skip
        for case in cases:
            if case is None:  # a row none of whose cells is wanted
                number += per_case
                continue
            for var_values in itertools.product(*experiment.vars.values()):
                base = number * block
                number += 1
                context: dict[str, Any] | None = None
                messages: tuple[dict[str, Any], ...] = ()
                prefixes: dict[str, Any] = {}
                for combo, closings in zip(combos, tails, strict=True):
                    first = base + combo.number * repeats
                    for repeat in range(repeats):
                        index = first + repeat
                        if index in skip:
                            continue
                        if context is None:  # the block's first cell: render once
                            context = {**case, **dict(zip(var_names, var_values, strict=True))}
                            messages = render(prompt, templates, context, index, experiment)
                            text = _messages_json(messages)
                        hasher = prefixes.get(combo.endpoint)
                        if hasher is None:
                            head = f'{heads[combo.endpoint]}"messages":{text},'
                            hasher = prefixes[combo.endpoint] = hashlib.sha256(head.encode())
                        digest = hasher.copy()
                        digest.update(closings[repeat])
                        cell_id = digest.hexdigest()[:32]
                        if shard is not None and shard_of(cell_id, shard.count) != shard.index:
                            continue  # another shard's
                        yield index, prompt, context, messages, combo, repeat, cell_id


def render(
    prompt: str,
    templates: Sequence[MessageTemplate],
    context: Mapping[str, Any],
    index: int,
    experiment: Experiment,
) -> tuple[dict[str, Any], ...]:
    """One prompt's messages for one row; a template (or an image file) that fails here is a
    ``SpecError`` naming the file, the line of the message's content, its key path, the cell
    and the values."""
    out = []
    folders = experiment.image_folders
    for i, message in enumerate(templates):
        try:
            out.append(message.render(context, folders))
        except Exception as exc:  # anything a template raises is the template's problem
            problem = experiment.render_problem(prompt, i, exc, context, cell=index)
            raise SpecError(problem) from None
    return tuple(out)
