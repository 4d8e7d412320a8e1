"""The grid: every call an experiment makes, generated lazily in a stable order.

Order (outermost first): prompts in file order, then case rows in file order, then each
``vars`` axis in file order, then each list-valued parameter in file order, then the repeat
index. Cell ``index`` counts from 0 in that order; result tables keep it.

Each cell carries a content hash of the full request — endpoint, model, rendered messages,
every parameter and the repeat index — as canonical JSON (sorted keys, compact separators).
That ``cell_id`` keys the cache, resume and de-duplication: two cells with the same id are
the same request and are sent once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

from .errors import Problem, SpecError
from .providers.base import Request
from .spec import Experiment


@dataclass(frozen=True, slots=True)
class Cell:
    """One call of the grid."""

    index: int
    prompt: str
    vars: Mapping[str, Any]
    params: Mapping[str, Any]
    repeat: int
    provider: str
    request: Request
    cell_id: str


def request_key(request: Request, repeat: int) -> str:
    """The content hash of a request (the ``cell_id``)."""
    payload = {
        "endpoint": request.endpoint,
        "model": request.model,
        "messages": request.messages,
        "params": request.params,
        "repeat": repeat,
    }
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def expand(
    experiment: Experiment,
    endpoints: Mapping[str, str],
    provider_override: str | None = None,
) -> Iterator[Cell]:
    """Yield every cell, lazily. ``endpoints`` maps provider name -> endpoint id (for the hash)."""
    var_names = list(experiment.vars)
    param_names = list(experiment.param_axes)
    repeats = range(experiment.spec.repeats)
    index = 0
    for prompt, templates in experiment.templates.items():
        for case in experiment.iter_cases():
            for var_values in itertools.product(*experiment.vars.values()):
                context = {**case, **dict(zip(var_names, var_values, strict=True))}
                messages = _render(prompt, templates, context, index)
                for param_values in itertools.product(*experiment.param_axes.values()):
                    params = dict(zip(param_names, param_values, strict=True))
                    model = str(params["model"])
                    provider = experiment.provider_for(model, provider_override)
                    request = Request(
                        endpoint=endpoints[provider],
                        model=model,
                        messages=messages,
                        params={k: v for k, v in params.items() if k != "model"},
                    )
                    for repeat in repeats:
                        yield Cell(
                            index, prompt, context, params, repeat, provider, request,
                            request_key(request, repeat),
                        )  # fmt: skip
                        index += 1


def _render(
    prompt: str, templates: Any, context: Mapping[str, Any], index: int
) -> tuple[dict[str, str], ...]:
    try:
        return tuple({"role": role, "content": t.render(context)} for role, t in templates)
    except jinja2.TemplateError as exc:
        raise SpecError(
            Problem(
                f"prompt {prompt!r} failed to render for cell {index} ({context}): {exc}",
                path=f"prompts.{prompt}",
                hint="check the template against this row's values",
            )
        ) from None
