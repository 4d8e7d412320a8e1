"""The ``scores:`` of an experiment: each named check of an answer, validated and compiled once.

A score is a mapping with exactly one kind (``equals``, ``regex``, ``judge``, ...; the list is
``schema.SCORE_KINDS``) and options (``strip``, ``ignore_case``). Everything that can be wrong
with one is found here, before anything runs, and located at its file line: an unknown kind, a
score with no kind or two, a regex that does not compile, a JSON schema that is not one (checked
against its meta-schema by ``jsonschema``), a JSON path it cannot read, a ``python:`` function
that cannot be imported, a judge on an unknown provider, an undefined variable in an expected
value or a rubric.

Expected values are templates over the row's vars, case columns and params, compiled like the
prompts (sandboxed Jinja2, undefined variables are errors). A judge's rubric also sees
``answer`` (the graded answer), ``prompt`` (the last user message sent) and ``messages``.

The result is a tuple of :class:`ScoreDef`: what ``promptgrid.scoring`` evaluates. This module
imports nothing from run time (user code named by ``python:`` is imported, to be found now).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import Problem
from .schema import SCORE_KINDS, ParamValues, ScoreSpec
from .templates import RenderError, Template, compile_template
from .yamlmarks import KeyPath, shorten

__all__ = [
    "JUDGE_NAMES",
    "JudgeDef",
    "ScoreDef",
    "compile_scores",
    "definition_digest",
    "parse_json_path",
    "recompile",
]

#: Names a rubric sees besides the row's values.
JUDGE_NAMES = frozenset({"answer", "prompt", "messages"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_PATH_STEP = re.compile(r"""\.([A-Za-z_][\w-]*)|\[(-?\d+)\]|\['([^']*)'\]|\["([^"]*)"\]""")

Where = Callable[[KeyPath, str, "str | None"], Problem]


@dataclass(frozen=True)
class JudgeDef:
    """A judge: its rubric's messages, model, provider (None: as the model is routed), scale
    (None: pass/fail, else 1..N) and extra request parameters."""

    messages: tuple[tuple[str, Template], ...]
    model: str
    provider: str | None
    scale: int | None
    params: Mapping[str, Any]


@dataclass(frozen=True)
class ScoreDef:
    """One compiled score: its name, kind and what evaluating it needs."""

    name: str
    kind: str
    spec: ScoreSpec
    #: Expected values as templates (equals, contains, ..., one_of labels, json_path's equals,
    #: close_to's value), in the order the kind uses them.
    expected: tuple[Template, ...] = ()
    literal: Any = None  #: json_path's or close_to's expected value when not a template
    pattern: re.Pattern[str] | None = None  #: a regex with no template syntax, compiled once
    path: tuple[str | int, ...] = ()  #: json_path, parsed
    validator: Any = None  #: json_schema: a jsonschema validator
    function: Callable[..., Any] | None = field(default=None, compare=False)  #: python:
    judge: JudgeDef | None = None
    digest: str = ""  #: hash of the definition: a stored score made by another is stale

    @property
    def column(self) -> str:
        """The table column of this score (``score_<name>``)."""
        return f"score_{self.name}"

    @property
    def timeout_s(self) -> float:
        """Seconds this score may take on one answer (``timeout_s``; a judge's calls have the
        provider's time limits instead)."""
        return self.spec.timeout_s

    @property
    def column_kind(self) -> str:
        """bool, int (a judge's 1..N scale) or float (a python scorer's number)."""
        if self.judge is not None:
            return "bool" if self.judge.scale is None else "int"
        return "float" if self.kind == "python" else "bool"


def definition_digest(spec: ScoreSpec) -> str:
    """A short hash of a score's definition, as canonical JSON. The time limit is not part of
    it: a longer one changes no value (``retry`` and ``score`` redo the rows that ran out)."""
    dumped = spec.model_dump(mode="json", exclude={"timeout_s"})
    text = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_json_path(path: str) -> tuple[str | int, ...] | None:
    """``$.a.b[0]['c d']`` -> ``("a", "b", 0, "c d")``; None if it is not such a path."""
    if not path.startswith("$"):
        return None
    steps: list[str | int] = []
    at = 1
    while at < len(path):
        match = _PATH_STEP.match(path, at)
        if match is None:
            return None
        name, index, single, double = match.groups()
        steps.append(int(index) if index is not None else (name or single or double or ""))
        at = match.end()
    return tuple(steps)


@dataclass
class _Checker:
    """Compiles the scores, collecting problems (one per mistake, each at its line)."""

    where: Where
    known: frozenset[str] | None  # vars, case columns, params; None: checked already
    context: Mapping[str, Any] | None  # the first row (None: unknown, a broken case file)
    providers: frozenset[str]
    scores_dir: Path
    problems: list[Problem] = field(default_factory=list)

    def problem(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        self.problems.append(self.where(path, message, hint))

    def template(
        self, source: str, path: KeyPath, extra: frozenset[str] = frozenset()
    ) -> Template | None:
        """Compile one template; check its variables and render it with the first row."""
        template, error = compile_template(source)
        if error is not None:
            self.problem(
                path,
                f"template syntax error: {error.message}",
                "fix the Jinja2 syntax: variables are written {{ name }}",
            )
            return None
        if self.known is None:
            return template
        known = self.known | extra
        missing = sorted(template.variables - known)
        for name in missing if self.context is not None else ():
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else (
                    "expected values see the row's vars, case columns and params"
                    + (" (and answer, prompt, messages in a rubric)" if extra else "")
                )
            )
            self.problem(path, f"undefined template variable {name!r}", hint)
        if missing or self.context is None:
            return None if missing else template
        sample = {**{n: "" for n in extra}, **self.context}
        try:
            template.render(sample)
        except RenderError as exc:
            self.problem(
                path,
                f"failed to render with the first row: {exc.message}",
                "fix the template: it must render for every row",
            )
            return None
        return template

    def rendered(self, template: Template | None) -> str | None:
        """The template rendered with the first row (None if unknown)."""
        if template is None or self.context is None:
            return None
        return template.render(self.context)


def compile_scores(
    specs: Mapping[str, ScoreSpec],
    *,
    where: Where,
    known: frozenset[str] | None,
    context: Mapping[str, Any] | None,
    providers: frozenset[str],
    scores_dir: Path,
    taken: Mapping[str, str],
) -> tuple[tuple[ScoreDef, ...], list[Problem]]:
    """Validate and compile ``scores:``. ``known``: the names expected values may use (None:
    validated already, see :func:`recompile`); ``context``: the first row, to render each
    template once (None when unknown); ``taken``: column names already used (vars, case
    columns, params) and what they are."""
    checker = _Checker(where, known, context, providers, scores_dir)
    out = []
    for name, spec in specs.items():
        path: KeyPath = ("scores", name)
        if not _NAME.match(name) or name == "errors":
            checker.problem(
                path,
                f"{name!r} cannot name a score",
                "use letters, digits and _ (column score_<name>); not 'errors'",
            )
            continue
        if f"score_{name}" in taken:
            checker.problem(
                path,
                f"column score_{name} would clash with the {taken[f'score_{name}']} of that name",
                "rename one of them",
            )
        kinds = [k for k in SCORE_KINDS if k in spec.model_fields_set]
        if len(kinds) != 1:
            message = "no kind of score given" if not kinds else f"several kinds given: {kinds}"
            checker.problem(path, message, "give exactly one of " + ", ".join(SCORE_KINDS))
            continue
        kind = kinds[0]
        if getattr(spec, kind) is None:
            checker.problem((*path, kind), f"{kind}: needs a value", "see `promptgrid schema`")
            continue
        if kind == "judge" and "timeout_s" in spec.model_fields_set:
            checker.problem(
                (*path, "timeout_s"),
                "a judge has no timeout_s: its calls have the provider's time limits",
                "set limits.timeout_s (or the provider's) instead",
            )
            continue
        problems_before = len(checker.problems)
        score = _compile(checker, name, kind, spec, (*path, kind))
        if score is not None and len(checker.problems) == problems_before:
            out.append(score)
    if any(s.judge is not None for s in out) and "answer" in (known or ()):
        checker.problem(
            ("scores",),
            "'answer' is both a var or case column and the judged answer a rubric sees",
            "rename the var or column",
        )
    return tuple(out), checker.problems


def recompile(
    specs: Mapping[str, ScoreSpec], scores_dir: Path
) -> tuple[tuple[ScoreDef, ...], dict[str, str]]:
    """Compile scores validated already (in another process: the scoring worker); the names
    of those that fail now, and why (a ``python:`` module that is not there any more)."""
    scores, problems = compile_scores(
        specs,
        where=lambda path, message, hint: Problem(message, path=str(path[1])),
        known=None,
        context=None,
        providers=frozenset(),
        scores_dir=scores_dir,
        taken={},
    )
    return scores, {p.path: p.message for p in problems}


def _compile(c: _Checker, name: str, kind: str, spec: ScoreSpec, path: KeyPath) -> ScoreDef | None:
    value = getattr(spec, kind)
    base = ScoreDef(name, kind, spec, digest=definition_digest(spec))
    if kind in ("equals", "contains", "not_contains", "icontains", "starts_with"):
        text = value if isinstance(value, str) else json.dumps(value)
        template = c.template(text, path)
        return _with(base, expected=(template,)) if template else None
    if kind == "regex":
        template = c.template(value, path)
        if template is None:
            return None
        flags = re.IGNORECASE if spec.ignore_case else 0
        try:
            pattern = re.compile(c.rendered(template) or value, flags)
        except re.error as exc:
            c.problem(path, f"bad regex: {exc}", "fix the pattern (Python re syntax)")
            return None
        fixed = pattern if not template.variables else None
        return _with(base, expected=(template,), pattern=fixed)
    if kind == "one_of":
        labels = [c.template(label, (*path, i)) for i, label in enumerate(value)]
        return _with(base, expected=tuple(t for t in labels if t)) if all(labels) else None
    if kind == "is_json":
        return base
    if kind == "json_schema":
        return _schema(c, base, value, path)
    if kind == "json_path":
        steps = parse_json_path(value.path)
        if steps is None:
            c.problem(
                (*path, "path"),
                f"cannot read JSON path {value.path!r}",
                "write it like $.key.sub[0] or $['a key']",
            )
            return None
        if isinstance(value.equals, str):
            template = c.template(value.equals, (*path, "equals"))
            return _with(base, path=steps, expected=(template,)) if template else None
        return _with(base, path=steps, literal=value.equals)
    if kind in ("min_length", "max_length"):
        return base
    if kind == "close_to":
        return _close_to(c, base, value.value, (*path, "value"))
    if kind == "python":
        function = _import(c, value, path)
        return _with(base, function=function) if function else None
    return _judge(c, base, spec, path)


def _with(base: ScoreDef, **changes: Any) -> ScoreDef:
    return replace(base, **changes)


def _schema(c: _Checker, base: ScoreDef, schema: dict[str, Any], path: KeyPath) -> ScoreDef | None:
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        at = "/".join(str(p) for p in exc.path)
        c.problem(
            path,
            f"bad JSON schema: {shorten(exc.message, 200)}" + (f" (at {at})" if at else ""),
            "fix the schema (JSON Schema)",
        )
        return None
    return _with(base, validator=cls(schema))


def _close_to(c: _Checker, base: ScoreDef, value: float | str, path: KeyPath) -> ScoreDef | None:
    if not isinstance(value, str):
        return _with(base, literal=float(value))
    template = c.template(value, path)
    if template is None:
        return None
    rendered = c.rendered(template)
    if rendered is not None:
        try:
            float(rendered)
        except ValueError:
            c.problem(
                path,
                f"close_to needs a number, got {shorten(repr(rendered))} with the first row",
                "give a number, or a template that renders one",
            )
            return None
    return _with(base, expected=(template,))


def _import(c: _Checker, target: str, path: KeyPath) -> Callable[..., Any] | None:
    """The function ``module:function``, imported with the experiment's folder on the path."""
    if not _FUNCTION.match(target):
        c.problem(path, f"{target!r} is not module:function", "e.g. python: my_scores:exact")
        return None
    module_name, _, attr = target.partition(":")
    if module_name == "__main__":
        c.problem(
            path,
            "python scorers run in a worker process, where __main__ is not this program",
            f"put {attr} in a module, e.g. my_scores.py beside the experiment file",
        )
        return None
    folder = str(c.scores_dir.resolve())
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: whatever it raises is its problem
        c.problem(
            path,
            f"cannot import {module_name!r}: {type(exc).__name__}: {shorten(str(exc), 200)}",
            f"put {module_name}.py beside the experiment file, or install its package",
        )
        return None
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
    function: Any = module
    for part in attr.split("."):
        function = getattr(function, part, None)
    if not callable(function):
        c.problem(
            path, f"{module_name} has no function {attr!r}", "name a function: module:function"
        )
        return None
    return function  # type: ignore[no-any-return]


def _judge(c: _Checker, base: ScoreDef, spec: ScoreSpec, path: KeyPath) -> ScoreDef | None:
    judge = spec.judge
    assert judge is not None
    ok = True
    if judge.provider is not None and judge.provider not in c.providers:
        close = difflib.get_close_matches(judge.provider, sorted(c.providers), n=1)
        c.problem(
            (*path, "provider"),
            f"unknown provider {judge.provider!r}",
            f"did you mean {close[0]!r}?" if close else f"use one of {sorted(c.providers)}",
        )
        ok = False
    for key, value in judge.params.items():
        if key == "model" or key not in ParamValues.model_fields:
            close = difflib.get_close_matches(key, list(ParamValues.model_fields), n=1)
            hint = (
                "the judge's model is judge.model"
                if key == "model"
                else f"did you mean {close[0]!r}?"
                if close
                else "see `promptgrid schema`"
            )
            c.problem((*path, "params", key), f"unknown judge parameter {key!r}", hint)
            ok = False
            continue
        try:
            ParamValues.model_validate({key: value})
        except ValidationError as exc:
            c.problem(
                (*path, "params", key),
                exc.errors()[0]["msg"].lower(),
                "a judge parameter is one value (judges have no axes)",
            )
            ok = False
    messages = []
    for i, message in enumerate(judge.rubric):
        where: KeyPath = (*path, "rubric", i, "content")  # a one-string rubric: its own line
        if not isinstance(message.content, str):
            c.problem(where, "a rubric message is text", "write the judge's rubric as text")
            ok = False
            continue
        template = c.template(message.content, where, JUDGE_NAMES)
        ok = ok and template is not None
        if template is not None:
            messages.append((message.role, template))
    if not ok:
        return None
    scale = None if judge.scale == "pass_fail" else int(judge.scale)
    return _with(
        base,
        judge=JudgeDef(tuple(messages), judge.model, judge.provider, scale, dict(judge.params)),
    )
