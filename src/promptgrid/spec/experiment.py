"""The validated experiment: prompts × cases × vars × params × repeats, checked up front.

``Experiment.from_yaml(path)``, ``Experiment.from_dict(mapping)`` and ``Experiment(**fields)`` go
through the same checks: the pydantic models in ``schema`` give types and ranges; the rest
(templates, axes, name clashes, provider names, case files) is checked here. Every problem is
collected, located (file, line, key path) and raised at once as one ``SpecError``.

This module knows nothing of running: which endpoint a model goes to, with which limits, is
resolved from it by ``promptgrid.config``.
"""

from __future__ import annotations

import difflib
import itertools
import keyword
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .. import untrusted
from ..apis import param_problem
from ..columns import RESERVED, kind_of
from ..errors import Problem, SpecError
from ..presets import PRESETS, vendor_problem
from .cases import CaseSource
from .messages import (
    ImageFolders,
    MessageTemplate,
    check_image,
    compile_message,
    literal_images,
)
from .schema import (
    BUILTIN_PROVIDERS,
    LIST_VALUED_PARAMS,
    ExperimentFile,
    Message,
    ParamValues,
    known_keys,
)
from .templates import RenderError
from .yamlmarks import (
    KeyPath,
    format_path,
    line_of,
    load_yaml,
    not_utf8,
    quote_hint,
    read_text,
    shorten,
)

if TYPE_CHECKING:
    from .scores import ScoreDef


class Experiment:
    """A validated experiment: prompts × cases × vars × params × repeats.

    Build one from a file with ``Experiment.from_yaml(path)`` or in code with the same fields as
    the file, e.g. ``Experiment(prompts={"p": "Name a {{ animal }}"}, vars={"animal": ["cat"]},
    params={"model": "gpt-4o-mini"}, provider="echo")``. Invalid input raises ``SpecError``.
    """

    def __init__(self, *, base_dir: str | Path | None = None, **fields: Any) -> None:
        data = {k: v for k, v in fields.items() if v is not None}
        self._setup(data, source=None, lines={}, base_dir=Path(base_dir or Path.cwd()))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Experiment:
        """Load and validate an experiment file."""
        path = Path(path)
        shown = not_utf8(path)
        if shown is not None:
            raise SpecError(
                Problem(
                    f"the file name {shown} is not valid UTF-8",
                    hint="rename it (or its folder): a run records where its experiment is",
                )
            )
        try:
            text = read_text(path)
        except FileNotFoundError:
            raise SpecError(
                Problem(f"no such file: {path}", hint="check the path; experiments/ has examples")
            ) from None
        except OSError as exc:
            raise SpecError(Problem(f"cannot read {path}: {exc}")) from None
        data, lines, starts = load_yaml(text, str(path))
        if not isinstance(data, dict):
            raise SpecError(
                Problem(
                    "the file must be a mapping with at least prompts: and params:",
                    str(path),
                    1,
                    hint="see experiments/animal_names.yaml for an example",
                )
            )
        data.setdefault("name", _default_name(path))
        self = cls.__new__(cls)
        self._setup(data, source=str(path), lines=lines, base_dir=path.parent, starts=starts)
        return self

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base_dir: str | Path | None = None
    ) -> Experiment:
        """Validate a mapping shaped like the experiment file."""
        self = cls.__new__(cls)
        self._setup(dict(data), source=None, lines={}, base_dir=Path(base_dir or Path.cwd()))
        return self

    # ------------------------------------------------------------------ validation

    def _setup(
        self,
        data: dict[str, Any],
        *,
        source: str | None,
        lines: dict[KeyPath, int],
        base_dir: Path,
        starts: dict[KeyPath, int] | None = None,
        scores_dir: Path | None = None,
    ) -> None:
        self.source = source
        self.base_dir = base_dir
        #: Where ``python:`` scorers are imported from first (the file that declared them).
        self.scores_dir = scores_dir or base_dir
        self._lines = lines
        self._starts = starts or {}  # literal blocks (content: |): the line their text starts on
        problems: list[Problem] = []
        self._cases_unknown = False  # a broken case file: its columns are unknown
        self._unrenderable: set[str] = set()  # prompts with a bad image file: reported already
        data.setdefault("name", "experiment")
        if unencodable := self._surrogates(data):
            raise SpecError(_first(unencodable))
        try:
            self.file = ExperimentFile.model_validate(data)
        except ValidationError as exc:
            raise SpecError(
                _first([self._problem_from_pydantic(e) for e in exc.errors()])
            ) from None
        spec = self.file
        self.name: str = spec.name or "experiment"
        self.param_axes: dict[str, tuple[Any, ...]] = self._check_params(problems)
        self.vars: dict[str, tuple[Any, ...]] = {k: tuple(v) for k, v in spec.vars.items()}
        self.cases = self._check_cases(problems)
        #: Where image files may be read from (the experiment's folder and ``files.allow``).
        self.image_folders = self._check_files(problems)
        self._check_names(problems)
        self.templates: dict[str, tuple[MessageTemplate, ...]] = self._check_templates(problems)
        self.routes: dict[str, str] = self._check_providers(problems)
        self._check_apis(problems)
        self._check_rendering(problems)
        self.scores: tuple[ScoreDef, ...] = self._check_scores(problems)
        self._check_race(problems)
        if problems:
            raise SpecError(_first(problems))
        #: Things worth a look that do not stop a run (shown by validate, plan and run).
        self.warnings: tuple[Problem, ...] = (*self._unused_vars(), *self._race_warnings())

    def _surrogates(self, data: Any) -> list[Problem]:
        """A problem for each text holding a UTF-16 surrogate (a ``"\\ud800"`` escape in a
        double-quoted YAML string): no character, and UTF-8 (so the store, the files and the
        request) cannot encode it. Walked without recursion: a mapping given in code may nest
        deeper than the stack."""
        problems = []
        todo: list[tuple[KeyPath, Any]] = [((), data)]
        while todo:
            path, value = todo.pop()
            if isinstance(value, str):
                if untrusted.has_surrogate(value):
                    problems.append(self.where(path, _SURROGATE, _SURROGATE_HINT))
            elif isinstance(value, Mapping):
                for key, item in value.items():
                    if isinstance(key, str) and untrusted.has_surrogate(key):
                        problems.append(self.where((*path, key), _SURROGATE, _SURROGATE_HINT))
                    todo.append(((*path, key), item))
            elif isinstance(value, list | tuple):
                todo += [((*path, i), item) for i, item in enumerate(value)]
        return sorted(problems, key=lambda p: (p.line or 0, p.path))

    def where(self, path: KeyPath, message: str, hint: str | None = None) -> Problem:
        """A problem located at ``path`` (file, line, key path)."""
        return Problem(message, self.source, line_of(self._lines, path), format_path(path), hint)

    def content_path(self, prompt: str, index: int) -> KeyPath:
        """The key path of message ``index`` of ``prompt`` (``prompts.p[0].content``, or
        ``prompts.p`` for the one-string shorthand)."""
        path: KeyPath = ("prompts", prompt, index, "content")
        if path not in self._lines and ("prompts", prompt) in self._lines:
            return ("prompts", prompt)
        return path

    def render_problem(
        self,
        prompt: str,
        index: int,
        error: Exception,
        context: Mapping[str, Any],
        cell: int | None = None,
    ) -> Problem:
        """Message ``index`` of ``prompt`` failed to render with ``context``: the problem, at the
        file line of the template line that failed. ``cell``: the grid cell (at run time)."""
        message = self.templates[prompt][index]
        lineno = error.lineno if isinstance(error, RenderError) else None
        reason = error.message if isinstance(error, RenderError) else f"{error!r}"
        where = error.where if isinstance(error, RenderError) else ()
        shown = ", ".join(
            f"{k}={shorten(repr(v), 40)}" for k, v in context.items() if k in message.variables
        )
        at_cell = "" if cell is None else f" for cell {cell}"
        values = f" ({shorten(shown, 200)})" if shown else ""
        hint = (
            "fix the template: validation renders each prompt once, with the first case row "
            "and the first value of each var"
            if cell is None
            else "fix the template, or this row's values: a template must render for every cell"
        )
        path = ("prompts", prompt, index, *where) if where else self.content_path(prompt, index)
        return Problem(
            f"failed to render{at_cell}{values}: {reason}",
            self.source,
            self._template_line(path, lineno),
            format_path(path),
            hint,
        )

    def _template_line(self, path: KeyPath, lineno: int | None) -> int | None:
        """The file line of line ``lineno`` of the template at ``path``: exact in a literal
        block (``content: |``); elsewhere YAML folds or escapes line breaks, so the key's line."""
        if lineno and path in self._starts:
            return self._starts[path] + lineno - 1
        return line_of(self._lines, path)

    def _problem_from_pydantic(self, err: Mapping[str, Any]) -> Problem:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            close = difflib.get_close_matches(key, known_keys(loc), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "remove it or fix its spelling"
            return self.where(loc, f"unknown key {key!r}", hint)
        if err["type"] == "missing":
            return self.where(loc, "missing required key", "add it (see `promptgrid schema`)")
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {shorten(repr(got))})"
        hint = "see `promptgrid schema`"
        names: list[str] = []
        if loc[:1] == ("prompts",) and isinstance(got, dict):  # content: {animal} unquoted?
            names = [k for k, v in got.items() if isinstance(k, str) and v is None]
        if names:
            name = names[0] if len(names) == 1 and names[0].isidentifier() else "animal"
            key = loc[-1] if isinstance(loc[-1], str) and len(loc) > 2 else "content"
            hint = quote_hint(key, f"{{{{ {name} }}}}")
        return self.where(loc, f"{err['msg'].lower()}{shown}", hint)

    def _check_params(self, problems: list[Problem]) -> dict[str, tuple[Any, ...]]:
        axes: dict[str, tuple[Any, ...]] = {}
        for key, raw in self.file.params.items():
            if key not in ParamValues.model_fields:
                close = difflib.get_close_matches(key, list(ParamValues.model_fields), n=1)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else ("vendor-specific parameters go under extra_body:")
                )
                problems.append(self.where(("params", key), f"unknown parameter {key!r}", hint))
                continue
            is_axis = _is_axis(key, raw)
            values = list(raw) if is_axis else [raw]
            if is_axis and not values:
                problems.append(
                    self.where(("params", key), "empty axis", "give at least one value")
                )
                continue
            for i, value in enumerate(values):
                try:
                    ParamValues.model_validate({key: value})
                except ValidationError as exc:
                    for e in exc.errors():
                        loc = ("params", key, i) if is_axis else ("params", key)
                        problems.append(self._problem_from_pydantic({**e, "loc": loc}))
            axes[key] = tuple(values)
        if "model" not in self.file.params:
            problems.append(
                self.where(("params",), "params.model is required", "e.g. model: gpt-4o-mini")
            )
        return axes

    def _check_cases(self, problems: list[Problem]) -> CaseSource:
        spec = self.file
        if spec.cases is not None and spec.cases_file is not None:
            problems.append(self.where(("cases_file",), "give cases or cases_file, not both", None))
        for name, values in spec.vars.items():
            if not values:
                problems.append(self.where(("vars", name), "empty axis", "give at least one value"))
        if spec.cases_file is not None:
            where = self.where(("cases_file",), "")
            source, file_problems = CaseSource.from_file(self.base_dir / spec.cases_file, where)
            problems.extend(file_problems)
            self._cases_unknown = bool(file_problems)
            return source
        source = CaseSource.from_rows(spec.cases)
        if spec.cases is not None and not spec.cases:
            problems.append(self.where(("cases",), "empty list of cases", "add rows"))
        for i, row in enumerate(spec.cases or []):
            if set(row) != set(source.columns):
                problems.append(
                    self.where(
                        ("cases", i),
                        f"keys {sorted(row)} differ from the first case's {list(source.columns)}",
                        "give every case the same keys",
                    )
                )
        return source

    def _check_files(self, problems: list[Problem]) -> ImageFolders:
        """The folders image files may come from: each of ``files.allow`` must be one."""
        allowed = [Path(p) for p in self.file.files.allow]
        for i, folder in enumerate(allowed):
            if not (self.base_dir / folder).is_dir():
                problems.append(
                    self.where(
                        ("files", "allow", i),
                        f"no such folder: {self.base_dir / folder}",
                        "name a folder (relative to the experiment file, or absolute)",
                    )
                )
        return ImageFolders.of(self.base_dir, allowed)

    def _check_names(self, problems: list[Problem]) -> None:
        params = set(self.param_axes)
        for section, names in (("vars", self.vars), ("cases", self.cases.columns)):
            for name in names:
                path = ("vars", name) if section == "vars" else ("cases",)
                if section == "cases" and self.file.cases_file is not None:
                    path = ("cases_file",)
                if name in RESERVED:
                    problems.append(self.where(path, f"{name!r} is a result column", "rename it"))
                elif name in params:
                    problems.append(
                        self.where(
                            path,
                            f"{name!r} is both a {section[:-1]} and a parameter",
                            "rename one of them: they would be the same result column",
                        )
                    )
                elif section == "vars" and (not name.isidentifier() or keyword.iskeyword(name)):
                    problems.append(
                        self.where(
                            path, f"{name!r} is not a valid variable name", "use a-z, 0-9, _"
                        )
                    )
        for name in set(self.vars) & set(self.cases.columns):
            problems.append(
                self.where(
                    ("vars", name), f"{name!r} is both a var and a case column", "rename one"
                )
            )

    def _check_templates(self, problems: list[Problem]) -> dict[str, tuple[MessageTemplate, ...]]:
        known = set(self.vars) | set(self.cases.columns)
        compiled: dict[str, tuple[MessageTemplate, ...]] = {}
        for name, messages in self.file.prompts.items():
            out = []
            for i, message in enumerate(messages):
                self._check_message(name, i, message, problems)
                template, errors = compile_message(message)
                for where, error in errors:
                    path = ("prompts", name, i, *where)
                    if where == ("content",):
                        path = self.content_path(name, i)
                    lineno = getattr(error, "lineno", None)
                    problems.append(
                        Problem(
                            f"template syntax error: {getattr(error, 'message', error)}",
                            self.source,
                            self._template_line(path, lineno),
                            format_path(path),
                            "fix the Jinja2 syntax: variables are written {{ name }}",
                        )
                    )
                if template is None:
                    continue
                for var in sorted(template.variables - known) if not self._cases_unknown else ():
                    close = difflib.get_close_matches(var, sorted(known), n=1)
                    hint = (
                        f"did you mean {close[0]!r}?"
                        if close
                        else "define it under vars:, or as a column of cases / cases_file"
                    )
                    where = template.where_used(var)
                    path = (
                        self.content_path(name, i)
                        if where == ("content",)
                        else ("prompts", name, i, *where)
                    )
                    problems.append(self.where(path, f"undefined template variable {var!r}", hint))
                for part, image in literal_images(template):
                    problem = check_image(image, self.image_folders)
                    if problem is not None:
                        self._unrenderable.add(name)
                        where = ("prompts", name, i, "content", part, "path")
                        problems.append(
                            self.where(where, problem, "paths are relative to the experiment file")
                        )
                out.append(template)
            compiled[name] = tuple(out)
        return compiled

    def _check_message(
        self, prompt: str, index: int, message: Message, problems: list[Problem]
    ) -> None:
        """What a message may hold for its role (the API would refuse the rest)."""
        path = ("prompts", prompt, index)
        role = message.role
        if role == "tool" and message.tool_call_id is None:
            problems.append(
                self.where(
                    path, "a tool message needs tool_call_id", "the id of the call it answers"
                )
            )
        if role != "tool" and message.tool_call_id is not None:
            problems.append(
                self.where(
                    (*path, "tool_call_id"),
                    f"a {role} message takes no tool_call_id",
                    "only role: tool answers a call",
                )
            )
        if role != "assistant" and message.tool_calls is not None:
            problems.append(
                self.where(
                    (*path, "tool_calls"),
                    f"a {role} message makes no tool calls",
                    "only role: assistant makes tool calls",
                )
            )
        if message.content is None and not (role == "assistant" and message.tool_calls):
            problems.append(
                self.where(path, "missing content", "give content: (a text, or a list of parts)")
            )
        if role != "user" and isinstance(message.content, list):
            for i, part in enumerate(message.content):
                if part.type != "text":
                    problems.append(
                        self.where(
                            (*path, "content", i),
                            f"an image in a {role} message",
                            "images go in user messages (the APIs accept them only there)",
                        )
                    )

    def _check_rendering(self, problems: list[Problem]) -> None:
        """Render every message once, with the first case row and the first value of each var,
        so a template that fails whatever the row (``{{ 1/0 }}``, ``{{ x.foo() }}``,
        ``range(10**8)``) is found before anything runs. Other rows are met at run time."""
        if self._cases_unknown:
            return
        context = self._first_row()
        for prompt, messages in self.templates.items():
            if (
                prompt in self._unrenderable
                or len(messages) < len(self.file.prompts[prompt])
                or any(m.variables - context.keys() for m in messages)
            ):
                continue  # a syntax error or an undefined variable: reported already
            for i, message in enumerate(messages):
                try:
                    message.render(context, self.image_folders)
                except RenderError as exc:
                    problems.append(self.render_problem(prompt, i, exc, context))

    def _first_row(self) -> dict[str, Any]:
        """The first case row and the first value of each var."""
        rows = self.cases.rows()
        try:
            first = next(rows, {})
        finally:
            rows.close()
        return {**first, **{name: values[0] for name, values in self.vars.items() if values}}

    def _check_scores(self, problems: list[Problem]) -> tuple[ScoreDef, ...]:
        """Compile ``scores:`` (see ``scores``); expected values see vars, cases and params."""
        if not self.file.scores:
            return ()
        from .scores import compile_scores  # a file without scores never loads it

        params = {k: v[0] for k, v in self.param_axes.items() if v}
        taken = {name: "parameter" for name in self.param_axes}
        taken.update({name: "case column" for name in self.cases.columns})
        taken.update({name: "var" for name in self.vars})
        scores, found = compile_scores(
            self.file.scores,
            where=self.where,
            known=frozenset(taken),
            context=None if self._cases_unknown else {**params, **self._first_row()},
            providers=frozenset({*BUILTIN_PROVIDERS, *self.file.providers}),
            scores_dir=self.scores_dir,
            taken=taken,
        )
        problems.extend(found)
        return scores

    def _check_race(self, problems: list[Problem]) -> None:
        """``race:`` names a declared score and a factor of the grid with at least two levels
        (one more than ``keep``); ``bounds`` only for a python scorer's numbers."""
        race = self.file.race
        if race is None:
            return
        declared = self.file.scores
        spec = declared.get(race.score) or declared.get(race.score.partition(".")[0])
        if spec is None or (race.score not in declared and spec.python is None):
            close = difflib.get_close_matches(race.score, list(declared), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "declare it under scores:"
            if declared and not close:
                hint = f"race on one of {sorted(declared)}"
            problems.append(self.where(("race", "score"), f"unknown score {race.score!r}", hint))
        elif race.bounds is not None and spec.python is None:
            problems.append(
                self.where(("race", "bounds"), f"score {race.score!r} has known bounds",
                           "remove bounds: (they are for a python scorer's numbers)")
            )  # fmt: skip
        elif race.bounds is not None and not _finite_range(*race.bounds):
            problems.append(self.where(("race", "bounds"), "bounds must be two finite numbers "
                                       "[low, high] with low < high",
                                       "e.g. bounds: [0, 10]"))  # fmt: skip
        levels = self.race_levels()
        varying = [name for name, n in levels.items() if n > 1]
        hint = f"race one of {varying}" if varying else "give the factor at least two values"
        if race.factor in self.cases.columns:
            problems.append(self.where(("race", "factor"), f"{race.factor!r} is a case column: "
                                       "cases are what variants are compared on",
                                       hint))  # fmt: skip
        elif race.factor not in levels:
            problems.append(self.where(("race", "factor"), f"unknown factor {race.factor!r}", hint))
        elif levels[race.factor] < 2:
            problems.append(
                self.where(("race", "factor"), f"factor {race.factor!r} does not vary: it has "
                           "one value, nothing to race", hint)
            )  # fmt: skip
        elif race.keep >= levels[race.factor]:
            problems.append(
                self.where(("race", "keep"), f"keep: {race.keep}, but {race.factor!r} has "
                           f"{levels[race.factor]} values: nothing would be dropped",
                           f"keep fewer than {levels[race.factor]}")
            )  # fmt: skip

    def race_levels(self) -> dict[str, int]:
        """The axes that can compete in a race and their number of values: ``prompt``, the
        vars and the parameters."""
        return {
            "prompt": len(self.file.prompts),
            **{name: len(values) for name, values in self.vars.items()},
            **{name: len(values) for name, values in self.param_axes.items()},
        }

    @property
    def race_bounds(self) -> tuple[float, float]:
        """The values the race's score lies between (see ``RaceSpec.bounds_for``)."""
        if self.file.race is None:
            raise ValueError("the experiment has no race:")
        return self.file.race.bounds_for(self.file.scores)

    def with_scores(
        self,
        scores: Mapping[str, Any],
        *,
        source: str | None = None,
        lines: dict[KeyPath, int] | None = None,
        scores_dir: Path | None = None,
    ) -> Experiment:
        """The same experiment with other ``scores:`` (from ``source``, whose ``lines`` locate
        its problems); ``python:`` scorers are imported from ``scores_dir`` first."""
        data = {**self.to_dict(), "scores": dict(scores)}
        other = type(self).__new__(type(self))
        other._setup(
            data, source=source or self.source, lines=lines or {}, base_dir=self.base_dir,
            scores_dir=scores_dir or self.scores_dir,
        )  # fmt: skip
        return other

    def with_race(self, race: Mapping[str, Any] | None) -> Experiment:
        """The same experiment with another ``race:`` (None: none), checked like the file's
        (its problems name the key path, ``race.factor``, without a line: it is not in the
        file)."""
        data = self.to_dict()
        data.pop("race", None)
        if race is not None:
            data["race"] = dict(race)
        other = type(self).__new__(type(self))
        other._setup(
            data, source=self.source, lines={}, base_dir=self.base_dir,
            scores_dir=self.scores_dir,
        )  # fmt: skip
        return other

    def _unused_vars(self) -> Iterator[Problem]:
        """Warnings: a var with several values that no template uses multiplies the calls
        without changing any request."""
        used: set[str] = set()
        for messages in self.templates.values():
            for message in messages:
                used |= message.variables
        for name, values in self.vars.items():
            if name not in used and len(values) > 1:
                yield self.where(
                    ("vars", name),
                    f"var {name!r} is not used by any prompt",
                    f"it multiplies the calls by {len(values)} without changing any request; "
                    "remove it or use it in a prompt",
                )

    def _race_warnings(self) -> Iterator[Problem]:
        """A race whose ``min_cases`` is not below the grid's blocks drops nothing."""
        race = self.file.race
        if race is None:
            return
        blocks = self.total // (self.race_levels()[race.factor] * self.file.repeats)
        if race.min_cases >= blocks:
            yield self.where(
                ("race", "min_cases"),
                f"min_cases: {race.min_cases}, but the grid has {blocks} blocks per "
                f"{race.factor}: no variant can be dropped before they run out",
                "lower min_cases, or add cases: the race will run the whole grid",
            )

    def _check_providers(self, problems: list[Problem]) -> dict[str, str]:
        """Map each model to the provider that serves it; check provider names and presets."""
        spec = self.file
        known = sorted({*BUILTIN_PROVIDERS, *spec.providers})
        if spec.provider not in known:
            close = difflib.get_close_matches(spec.provider, known, n=1)
            problems.append(
                self.where(
                    ("provider",),
                    f"unknown provider {spec.provider!r}",
                    f"did you mean {close[0]!r}?" if close else f"use one of {known}",
                )
            )
        routes: dict[str, str] = {}
        for pname, config in spec.providers.items():
            self._check_preset(pname, problems)
            for i, model in enumerate(config.models):
                if model in routes:
                    problems.append(
                        self.where(
                            ("providers", pname, "models", i),
                            f"model {model!r} is already listed under provider {routes[model]!r}",
                            "list each model under one provider",
                        )
                    )
                routes[model] = pname
        return routes

    def _check_preset(self, name: str, problems: list[Problem]) -> None:
        config = self.file.providers[name]
        path = ("providers", name)
        preset = config.preset
        if preset is not None and preset not in PRESETS:
            close = difflib.get_close_matches(preset, sorted(PRESETS), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"use one of {sorted(PRESETS)}"
            problems.append(self.where((*path, "preset"), f"unknown preset {preset!r}", hint))
            return
        if preset == "azure" and config.base_url is None:
            problems.append(
                self.where(
                    path,
                    "the azure preset needs base_url: your resource's URL",
                    "e.g. base_url: https://RESOURCE.openai.azure.com",
                )
            )
        if config.batch:  # true or {limits}: this provider must have a Batch API to use
            no_batch = PRESETS[preset].no_batch if preset is not None else ""
            if config.type == "echo":
                no_batch = "the echo provider answers at once, offline: it has no Batch API"
            if no_batch:
                problems.append(
                    self.where((*path, "batch"), no_batch, "remove batch: for this provider")
                )
        for key in ("api_version", "deployments"):
            if preset != "azure" and getattr(config, key):
                problems.append(
                    self.where((*path, key), f"{key} is an Azure setting", "add preset: azure")
                )

    def provider_api(self, name: str) -> str:
        """The API (``chat`` or ``responses``) provider ``name`` speaks: its own ``api``, else
        the experiment's."""
        config = self.file.providers.get(name)
        return (config.api if config is not None else None) or self.file.api

    def request_problems(self, name: str) -> list[Problem]:
        """What the grid's parameters ask of provider ``name`` that its API or its vendor does
        not take (each located at its parameter)."""
        return [
            self.where(path, f"{message} (provider {name!r})", hint)
            for path, message, hint in self._request_issues(name)
        ]

    def _request_issues(self, name: str) -> list[tuple[KeyPath, str, str]]:
        config = self.file.providers.get(name)
        preset = config.preset if config is not None and config.preset in PRESETS else None
        api = self.provider_api(name)
        if preset is not None and api not in PRESETS[preset].apis:
            vendor = PRESETS[preset]
            path: KeyPath = ("providers", name, "api") if config and config.api else ("api",)
            # Its parameters are moot until it speaks an API its vendor serves.
            return [(path, f"{vendor.vendor} serves Chat Completions only",
                     f"use api: chat for it (see {vendor.doc})")]  # fmt: skip
        found = []
        for key, values in self.param_axes.items():
            is_axis = _is_axis(key, self.file.params.get(key))
            for i, value in enumerate(values):
                problem = param_problem(api, key, value)
                if problem is None and preset is not None:
                    problem = vendor_problem(preset, key, value)
                if problem is not None:
                    at: KeyPath = ("params", key, i) if is_axis else ("params", key)
                    found.append((at, *problem))
                    break  # one problem per parameter and provider
        return found

    def _check_apis(self, problems: list[Problem]) -> None:
        """Every provider the grid's models go to can take the grid's parameters. A problem
        several providers share is reported once, naming them all."""
        if "model" not in self.param_axes:
            return
        used = {self.routes.get(str(m), self.file.provider) for m in self.param_axes["model"]}
        shared: dict[tuple[KeyPath, str, str], list[str]] = {}
        for name in sorted(used & {*BUILTIN_PROVIDERS, *self.file.providers}):
            for issue in self._request_issues(name):
                shared.setdefault(issue, []).append(name)
        for (path, message, hint), names in shared.items():
            which = ", ".join(repr(n) for n in names)
            label = "provider" if len(names) == 1 else "providers"
            problems.append(self.where(path, f"{message} ({label} {which})", hint))

    # ------------------------------------------------------------------ derived values

    def param_combos(self, model: str | None = None) -> Iterator[dict[str, Any]]:
        """Each combination of parameter values (with this ``model`` only, if given)."""
        names = list(self.param_axes)
        for values in itertools.product(*self.param_axes.values()):
            params = dict(zip(names, values, strict=True))
            if model is None or str(params["model"]) == model:
                yield params

    @property
    def axes(self) -> dict[str, int]:
        """Length of each axis of the grid, in grid order (outermost first)."""
        out = {"prompt": len(self.templates)}
        if self.cases.columns:
            out["cases"] = self.cases.count
        out.update({name: len(values) for name, values in self.vars.items()})
        out.update({k: len(v) for k, v in self.param_axes.items() if len(v) > 1})
        out["repeat"] = self.file.repeats
        return out

    @property
    def total(self) -> int:
        """How many cells (calls) the grid has."""
        n = 1
        for length in self.axes.values():
            n *= length
        return n

    def columns(self) -> list[tuple[str, str]]:
        """The var and parameter columns of the result table with their kind
        (str, int, float, bool, or json for anything else), in table order."""
        seen: dict[str, set[str]] = {k: set(v) for k, v in self.cases.types}
        for name, values in (*self.vars.items(), *self.param_axes.items()):
            seen[name] = {type(v).__name__ for v in values}
        order = [*self.cases.columns, *self.vars, *self.param_axes]
        return [(name, kind_of(seen.get(name, set()))) for name in order]

    def iter_cases(self) -> Iterator[dict[str, Any]]:
        """The case rows (one empty row when there are none), streamed."""
        return self.cases.rows()

    def to_dict(self) -> dict[str, Any]:
        """The experiment as a mapping shaped like the file (defaults left out)."""
        return self.file.model_dump(mode="json", exclude_defaults=True)

    def requests_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without ``scores`` and ``batch`` settings: what decides the requests
        a run sends (a resume may change its scores, or send the rest online or as batches,
        not its requests)."""
        return self.requests_of(self.to_dict())

    @staticmethod
    def requests_of(data: Mapping[str, Any]) -> dict[str, Any]:
        """An experiment's mapping (:meth:`to_dict`, or a run's stored copy) without what
        changes no request: ``scores`` and the ``batch`` settings."""
        out = {k: v for k, v in data.items() if k not in ("scores", "batch")}
        if "providers" in out:
            out["providers"] = {
                name: {k: v for k, v in config.items() if k != "batch"}
                for name, config in out["providers"].items()
            }
        return out

    def to_yaml(self) -> str:
        """The experiment as YAML, loadable with ``Experiment.from_yaml``."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, cells={self.total})"


#: Problems shown at most: a list of 100,000 bad values is one mistake, not 100,000 lines.
MAX_PROBLEMS = 20


_SURROGATE = (
    "a UTF-16 surrogate escape (\\ud800-\\udfff) is not a character: UTF-8 cannot encode it"
)
_SURROGATE_HINT = (
    'write the character itself (in a double-quoted YAML string, "\\U0001F600" for one beyond '
    "U+FFFF: \\u escapes stop at U+FFFF)"
)


def _first(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    more = len(problems) - MAX_PROBLEMS + 1
    return [*problems[: MAX_PROBLEMS - 1], Problem(f"... and {more:,} more problems like these")]


def _is_axis(key: str, raw: Any) -> bool:
    """A list is an axis, except a list-valued parameter's own list (then a list of lists is)."""
    return isinstance(raw, list) and (
        key not in LIST_VALUED_PARAMS or any(isinstance(v, list) for v in raw)
    )


def _finite_range(low: float, high: float) -> bool:
    return math.isfinite(low) and math.isfinite(high) and low < high


def _default_name(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "_.-" else "-" for c in path.stem)
    return stem.strip("-.") or "experiment"
