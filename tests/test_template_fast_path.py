"""Plain ``{{ name }}`` templates render without Jinja: exactly as Jinja would, or through it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptgrid.spec.sandbox import MAX_TEXT
from promptgrid.spec.templates import RenderError, compile_template

SOURCES = [
    "{{ q }}",
    "{{q}}",
    "Answer in a {{ tone }} tone: {{ q }}",
    "{{ q }}{{ q }} and {{tone}}\n",
    "line one\nline two {{ q }}\n\n",
    "braces { } {x} {0} }{ and {{ q }}",
    "{{ q }} {% if tone %}{{ tone }}{% endif %}",  # a block: Jinja
    "{{ q | upper }}",  # a filter: Jinja
    "{{- q }} x {{ q -}}",  # whitespace control: Jinja
    "{{ q }}\r\nnext",  # newlines Jinja rewrites
    "{# note #}{{ q }}",
    "{{ none }} {{ true }} {{ q }}",  # constants, not variables
    "{{ range }}",  # a global, when the context lacks it
]


def both(source: str, context: dict[str, Any]) -> tuple[str, str]:
    template, error = compile_template(source)
    assert error is None
    assert template._compiled is not None
    return template.render(context), template._compiled.render(context)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    "context",
    [
        {"q": "What is 2+2?", "tone": "dry"},
        {"q": "{{ not a tag }} 100% {}", "tone": ""},
        {"q": "é ✓ \u2028 \x00", "tone": 3},  # a non-string value goes through Jinja
        {"q": ["a", 1], "tone": None},
        {"q": True, "tone": 0.5},
        {"q": 7, "tone": -3},  # numbers: the fast path prints them as Jinja does
        {"q": float("nan"), "tone": 1e300},
        {"q": 10**30, "tone": False},  # a huge integer: Jinja, with its limit
    ],
)
def test_fast_path_renders_what_jinja_renders(source: str, context: dict[str, Any]) -> None:
    fast, jinja = both(source, context)
    assert fast == jinja


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="ab{}%\n\\ é", max_size=6), min_size=2, max_size=4),
    values=st.lists(st.text(max_size=8), min_size=1, max_size=3),
)
def test_fast_path_equals_jinja_on_any_text(texts: list[str], values: list[str]) -> None:
    names = [f"v{i}" for i in range(len(texts) - 1)]
    source = "".join(t + f"{{{{ {n} }}}}" for t, n in zip(texts, names, strict=False)) + texts[-1]
    template, error = compile_template(source)
    if error is not None:
        return  # "{%", "{#" in the text: not a template Jinja compiles
    context = {n: values[i % len(values)] for i, n in enumerate(names)}
    assert template._compiled is not None
    assert template.render(context) == template._compiled.render(context)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(), st.floats(), st.booleans()), min_size=2, max_size=2))
def test_numbers_print_as_jinja_prints_them(values: list[Any]) -> None:
    fast, jinja = both("n={{ a }}, {{ b }}.", {"a": values[0], "b": values[1]})
    assert fast == jinja


def test_numbers_take_the_fast_path() -> None:
    # A var axis of numbers (``vars: {n: [1, 2, 3]}``) is common: it must not cost a Jinja
    # render per cell. With Jinja taken away, only the fast path can answer.
    template, _ = compile_template("Say {{ n }} and {{ x }} ({{ ok }}).")
    fast = dataclasses.replace(template, _compiled=_NoJinja())
    assert fast.render({"n": 3, "x": 0.25, "ok": True}) == "Say 3 and 0.25 (True)."


class _NoJinja:
    def render(self, context: Any) -> str:
        raise AssertionError("rendered by Jinja")


def test_missing_variable_is_jinjas_error() -> None:
    template, _ = compile_template("Hello {{ who }}")
    with pytest.raises(RenderError, match="'who' is undefined"):
        template.render({})


def test_output_over_the_limit_is_refused() -> None:
    template, _ = compile_template("{{ q }}{{ q }}")
    with pytest.raises(RenderError, match="output"):
        template.render({"q": "x" * (MAX_TEXT // 2 + 1)})
