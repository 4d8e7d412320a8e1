"""The deterministic scores: each a pure function of the answer and the row's values.

Expected values are the score's templates rendered with the row (vars, case columns, params).
``strip`` (default on) ignores whitespace around the answer — and around a rendered expected
value; ``ignore_case`` compares text with ``str.casefold``. An answer that is not what a check
needs (not JSON for ``json_schema``, not a number for ``close_to``) fails the check; a
problem of the score itself for this row (an expected value that does not render, a templated
regex that does not compile), or an answer it cannot read at all (JSON nested deeper than
Python's parser goes), is an error, raised as :class:`ScoreFailure`. A ``regex`` is searched by
re2 or ``re`` (:mod:`.patterns`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .. import untrusted
from ..spec.scores import ScoreDef
from ..spec.templates import RenderError, Template
from .patterns import Matcher, matcher

__all__ = ["NESTED", "ScoreFailure", "evaluate"]

_MISSING = object()
#: The error of an answer whose JSON nests deeper than Python's parser can go.
NESTED = "the answer's JSON is nested too deeply to read"


class ScoreFailure(Exception):
    """A score cannot be computed for this row; the message is the row's score error."""


def _render(template: Template, context: Mapping[str, Any], strip: bool) -> str:
    try:
        text = template.render(context)
    except RenderError as exc:
        raise ScoreFailure(f"expected value failed to render: {exc.message}") from None
    return text.strip() if strip else text


def evaluate(score: ScoreDef, answer: str | None, context: Mapping[str, Any]) -> bool:
    """Whether ``answer`` passes ``score`` for a row with these values."""
    try:
        return _evaluate(score, answer, context)
    except RecursionError:  # parsed, but too deep for a check that walks it (a schema)
        raise ScoreFailure(NESTED) from None


def _evaluate(score: ScoreDef, answer: str | None, context: Mapping[str, Any]) -> bool:
    spec = score.spec
    text = answer or ""
    if spec.strip:
        text = text.strip()
    fold = str.casefold if spec.ignore_case else str
    kind = score.kind
    if kind in ("equals", "contains", "not_contains", "icontains", "starts_with"):
        expected = _render(score.expected[0], context, spec.strip)
        if kind == "icontains":
            return expected.casefold() in text.casefold()
        got, want = fold(text), fold(expected)
        if kind == "equals":
            return got == want
        if kind == "starts_with":
            return got.startswith(want)
        return (want in got) == (kind == "contains")
    if kind == "regex":
        return _pattern(score, context).matches(text)
    if kind == "one_of":
        labels = {fold(_render(t, context, spec.strip)) for t in score.expected}
        return fold(text) in labels
    if kind in ("min_length", "max_length"):
        limit: int = getattr(spec, kind)
        return len(text) >= limit if kind == "min_length" else len(text) <= limit
    if kind == "close_to":
        return _close_to(score, text, context)
    value = _json(text)
    if value is _MISSING:
        return False
    if kind == "is_json":
        return True
    if kind == "json_schema":
        return bool(score.validator.is_valid(value))
    if kind == "json_path":
        return _json_path(score, value, context, fold)
    raise ScoreFailure(f"{kind!r} is not a deterministic score")  # a bug: spec lets none through


def _pattern(score: ScoreDef, context: Mapping[str, Any]) -> Matcher:
    if score.pattern is not None:
        return matcher(score.pattern.pattern, score.pattern.flags)
    source = _render(score.expected[0], context, strip=False)
    try:
        return matcher(source, re.IGNORECASE if score.spec.ignore_case else 0)
    except re.error as exc:
        raise ScoreFailure(f"the regex {source!r} does not compile for this row: {exc}") from None


def _json(text: str) -> Any:
    try:
        return untrusted.loads(text)
    except ValueError:
        return _MISSING
    except RecursionError:  # valid or not, Python cannot read it: say so rather than guess
        raise ScoreFailure(NESTED) from None


def _json_path(score: ScoreDef, value: Any, context: Mapping[str, Any], fold: Any) -> bool:
    for step in score.path:
        try:
            value = value[step] if isinstance(step, int) == isinstance(value, list) else _MISSING
        except (IndexError, KeyError, TypeError):
            return False
        if value is _MISSING:
            return False
    if not score.expected:  # a literal: equal values of the same JSON type
        literal = score.literal
        return bool(value == literal and isinstance(value, bool) == isinstance(literal, bool))
    expected = _render(score.expected[0], context, score.spec.strip)
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return bool(fold(shown) == fold(expected))


def _close_to(score: ScoreDef, text: str, context: Mapping[str, Any]) -> bool:
    spec = score.spec.close_to
    assert spec is not None
    if score.expected:
        rendered = _render(score.expected[0], context, strip=True)
        try:
            expected = float(rendered)
        except ValueError:
            raise ScoreFailure(f"close_to's value {rendered!r} is not a number") from None
    else:
        expected = float(score.literal)
    try:
        number = float(text)
    except ValueError:
        return False
    return math.isclose(number, expected, rel_tol=spec.relative, abs_tol=spec.tolerance)
