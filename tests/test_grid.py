"""The grid: lazy, stable order, content hashes."""

from __future__ import annotations

import itertools

import pytest

from promptgrid.config import RunOptions, resolve
from promptgrid.grid import cell_ids, expand, request_key
from promptgrid.providers.base import Request
from promptgrid.spec import Experiment


def make(**fields) -> Experiment:
    fields.setdefault("provider", "echo")
    return Experiment(**fields)


def cells(exp: Experiment, endpoint: str | None = None, **options):
    """The experiment's cells as a run would route them (``options`` as ``run()`` takes)."""
    return expand(resolve(exp, RunOptions(**options)), endpoint)


def test_order_is_prompts_cases_vars_params_repeats() -> None:
    exp = make(
        prompts={"a": "{{ x }} {{ y }} {{ c }}", "b": "{{ x }}{{ y }}{{ c }}"},
        cases=[{"c": 1}, {"c": 2}],
        vars={"x": [1, 2], "y": ["u"]},
        params={"model": ["m1", "m2"], "temperature": 0},
        repeats=2,
    )
    walked = list(cells(exp))
    assert len(walked) == exp.total == 2 * 2 * 2 * 1 * 2 * 2
    assert [c.index for c in walked] == list(range(exp.total))
    keys = [(c.prompt, c.vars["c"], c.vars["x"], c.params["model"], c.repeat) for c in walked]
    expected = list(itertools.product("ab", [1, 2], [1, 2], ["m1", "m2"], [0, 1]))
    assert keys == expected


def test_messages_are_rendered_and_params_split() -> None:
    exp = make(
        prompts={"p": [{"role": "system", "content": "Be {{ tone }}."},
                       {"role": "user", "content": "Name a {{ animal }}"}]},
        vars={"tone": ["brief"], "animal": ["cat"]},
        params={"model": "gpt-4o-mini", "temperature": 0.5, "max_tokens": 9},
    )  # fmt: skip
    [cell] = cells(exp)
    assert cell.request.messages == (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a cat"},
    )
    assert cell.request.model == "gpt-4o-mini"
    assert cell.request.params == {"temperature": 0.5, "max_tokens": 9}
    assert cell.params["model"] == "gpt-4o-mini"


def test_expansion_is_lazy() -> None:
    exp = make(
        prompts={"p": "{{ a }}{{ b }}{{ c }}"},
        vars={"a": list(range(100)), "b": list(range(100)), "c": list(range(100))},
        params={"model": "m", "seed": list(range(100))},
    )
    assert exp.total == 100_000_000
    first = list(itertools.islice(cells(exp), 3))  # would not fit if materialised
    assert [c.index for c in first] == [0, 1, 2]


def test_hash_covers_the_whole_request() -> None:
    base = Request("echo", "m", ({"role": "user", "content": "hi"},), {"temperature": 0})
    key = request_key(base, 0)
    assert len(key) == 32 and key == request_key(base, 0)
    variants = [
        Request("other", "m", base.messages, base.params),
        Request("echo", "m2", base.messages, base.params),
        Request("echo", "m", ({"role": "user", "content": "hi!"},), base.params),
        Request("echo", "m", base.messages, {"temperature": 1}),
        Request("echo", "m", base.messages, {"temperature": 0, "seed": 1}),
    ]
    keys = {request_key(v, 0) for v in variants} | {request_key(base, 1)}
    assert key not in keys and len(keys) == len(variants) + 1


def test_hash_ignores_param_order_and_unused_vars() -> None:
    a = Request("echo", "m", ({"role": "user", "content": "x"},), {"a": 1, "b": 2})
    b = Request("echo", "m", ({"role": "user", "content": "x"},), {"b": 2, "a": 1})
    assert request_key(a, 0) == request_key(b, 0)
    exp = make(prompts={"p": "same"}, vars={"unused": [1, 2]}, params={"model": "m"})
    walked = list(cells(exp))
    assert walked[0].cell_id == walked[1].cell_id  # the same request: sent once


def test_endpoint_is_in_the_hash_and_routing() -> None:
    exp = Experiment(
        prompts={"p": "hi"},
        params={"model": ["gpt-4o-mini", "llama3"]},
        providers={"local": {"base_url": "http://127.0.0.1:11434/v1", "models": ["llama3"]}},
    )
    a, b = cells(exp)
    assert (a.endpoint, b.endpoint) == ("openai", "local")
    assert b.request.endpoint == "http://127.0.0.1:11434/v1"
    c, d = cells(exp, provider="echo")
    assert c.endpoint == d.endpoint == "echo" and c.cell_id != a.cell_id


def test_one_endpoints_share_keeps_grid_indexes() -> None:
    exp = Experiment(
        prompts={"p": "{{ x }}"},
        vars={"x": [1, 2]},
        params={"model": ["gpt-4o-mini", "llama3"]},
        providers={"local": {"base_url": "http://127.0.0.1:11434/v1", "models": ["llama3"]}},
    )
    everything = list(cells(exp))
    local = list(cells(exp, "local"))
    assert [c.index for c in local] == [1, 3]
    assert [c.cell_id for c in local] == [c.cell_id for c in everything if c.endpoint == "local"]


@pytest.mark.parametrize("repeats", [1, 3])
def test_fast_ids_equal_the_canonical_hash(repeats: int) -> None:
    # expand() continues a hashed prefix per block: it must hash exactly request_key's bytes.
    exp = make(
        prompts={
            "p": [{"role": "system", "content": "é {{ x }}"}, {"role": "user", "content": "q"}]
        },
        vars={"x": ["a", "ü", 3]},
        params={"model": ["m1", "m2"], "temperature": [0, 0.5], "stop": ["\n", "."]},
        repeats=repeats,
    )
    walked = list(cells(exp))
    assert [c.cell_id for c in walked] == [request_key(c.request, c.repeat) for c in walked]
    config = resolve(exp, RunOptions())
    assert list(cell_ids(config)) == [c.cell_id for c in walked]


def test_skipped_cells_are_not_built() -> None:
    exp = make(prompts={"p": "{{ x }}"}, vars={"x": list(range(5))}, params={"model": "m"})
    config = resolve(exp, RunOptions())
    assert [c.index for c in expand(config, skip={0, 2, 3})] == [1, 4]
