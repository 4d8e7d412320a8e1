"""The experiment file: its schema, and the validation that runs before anything else.

``Experiment.from_yaml(path)`` and ``Experiment(**fields)`` go through the same checks: the
pydantic models below give types and ranges; the rest (templates, axes, name clashes, provider
routing, case files) is checked here by hand. Every problem is collected, located (file, line,
key path) and raised at once as one ``SpecError``.

Parameters: a list is an axis of the grid and a scalar is fixed, except for parameters whose value
is itself a list (``stop``, ``tools``, ``modalities``): for those a list of lists is an axis.
"""

from __future__ import annotations

import difflib
import keyword
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .cases import CaseSource
from .errors import Problem, SpecError
from .templates import Template, compile_template
from .yamlmarks import Path as KeyPath
from .yamlmarks import format_path, line_of, load_yaml

# Columns of the result table; a var, case column or parameter may not take one of these names.
RESERVED_COLUMNS = (
    "run_id", "cell_id", "prompt", "repeat", "messages", "response", "finish_reason", "status",
    "error_type", "http_status", "error", "attempts", "prompt_tokens", "completion_tokens",
    "cached_tokens", "reasoning_tokens", "cost_usd", "latency_s", "resolved_model", "request_id",
    "cached",
)  # fmt: skip
LIST_VALUED_PARAMS = frozenset({"stop", "tools", "modalities"})
BUILTIN_PROVIDERS = ("echo", "openai")
DEFAULT_CONCURRENCY = 50
DEFAULT_TIMEOUT_S = 60.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _none_is_empty(value: Any) -> Any:
    # ``params:`` with nothing under it is YAML null; treat it as an empty mapping.
    return {} if value is None else value


EmptyOk = BeforeValidator(_none_is_empty)


def _user_shorthand(value: Any) -> Any:
    return [{"role": "user", "content": value}] if isinstance(value, str) else value


class Message(_Model):
    """One chat message; ``content`` is a Jinja2 template."""

    role: Literal["system", "user", "assistant"]
    content: str


class Limits(_Model):
    """Rate limits for an endpoint; unset rpm/tpm are learned from the server's headers."""

    rpm: float | None = Field(None, gt=0, description="requests per minute")
    tpm: int | None = Field(None, gt=0, description="tokens per minute")
    max_concurrency: int | None = Field(None, gt=0, description="calls in flight at most")
    timeout_s: float | None = Field(None, gt=0, description="seconds before one call times out")


class RetryPolicy(_Model):
    """How failing calls are retried (429, 5xx, timeouts, dropped connections, bad bodies)."""

    max_attempts: int = Field(6, ge=1, le=100, description="attempts per cell, first included")
    max_wait_s: float = Field(120.0, gt=0, description="longest wait between two attempts")


class ProviderConfig(_Model):
    """An OpenAI-compatible endpoint; models listed in ``models`` are sent to it."""

    type: Literal["openai", "echo"] = "openai"
    base_url: str | None = Field(None, description="default: OPENAI_BASE_URL or api.openai.com")
    api_key_env: str | None = Field(None, description="env var holding the key; OPENAI_API_KEY")
    models: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)


class ParamValues(_Model):
    """One value of each chat-completion parameter (the grid's axes are lists of these)."""

    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1, le=128)
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    extra_body: dict[str, Any] | None = Field(
        None, description="vendor parameters sent as-is (vLLM top_k, Ollama options, ...)"
    )


class ExperimentFile(_Model):
    """The experiment file, as written."""

    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100,
        description="names the results folder; default: the file name",
    )  # fmt: skip
    description: str = ""
    provider: str = Field("openai", description="echo, openai, or a name under providers")
    providers: Annotated[dict[str, ProviderConfig], EmptyOk] = Field(default_factory=dict)
    prompts: dict[str, Annotated[list[Message], BeforeValidator(_user_shorthand)]] = Field(
        min_length=1
    )
    vars: Annotated[dict[str, list[Any]], EmptyOk] = Field(default_factory=dict)
    cases: list[dict[str, Any]] | None = None
    cases_file: str | None = Field(None, description="CSV or JSONL, relative to this file")
    params: Annotated[dict[str, Any], EmptyOk] = Field(default_factory=dict)
    repeats: int = Field(1, ge=1, le=10_000)
    limits: Limits = Field(default_factory=Limits)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the experiment file (for editors: see the README)."""
    schema = ExperimentFile.model_json_schema()
    value_schema = ParamValues.model_json_schema()
    defs = schema.setdefault("$defs", {})
    defs.update(value_schema.pop("$defs", {}))
    params: dict[str, Any] = {}
    for name, prop in value_schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k not in ("default", "title")}
        options = [s for s in prop.pop("anyOf", [prop]) if s != {"type": "null"}]
        options = [{**o, **prop} if "anyOf" not in prop else o for o in options]
        params[name] = {"anyOf": [*options, {"type": "array", "items": {"anyOf": options}}]}
    schema["properties"]["params"] = {
        "type": "object",
        "description": "chat-completion parameters; a list is an axis, a scalar is fixed",
        "properties": params,
        "additionalProperties": False,
        "required": ["model"],
    }
    prompt = schema["properties"]["prompts"]["additionalProperties"]
    schema["properties"]["prompts"]["additionalProperties"] = {
        "anyOf": [{"type": "string"}, prompt]
    }
    schema["title"] = "promptgrid experiment"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


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
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError(
                Problem(f"no such file: {path}", hint="check the path; experiments/ has examples")
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(Problem(f"cannot read {path}: {exc}")) from None
        data, lines = load_yaml(text, str(path))
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
        self._setup(data, source=str(path), lines=lines, base_dir=path.parent)
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
        self, data: dict[str, Any], *, source: str | None, lines: dict[KeyPath, int], base_dir: Path
    ) -> None:
        self.source = source
        self.base_dir = base_dir
        self._lines = lines
        problems: list[Problem] = []
        self._cases_unknown = False  # a broken case file: its columns are unknown
        data.setdefault("name", "experiment")
        try:
            self.spec = ExperimentFile.model_validate(data)
        except ValidationError as exc:
            raise SpecError([self._problem_from_pydantic(e) for e in exc.errors()]) from None
        spec = self.spec
        self.name: str = spec.name or "experiment"
        self.param_axes: dict[str, tuple[Any, ...]] = self._check_params(problems)
        self.vars: dict[str, tuple[Any, ...]] = {k: tuple(v) for k, v in spec.vars.items()}
        self.cases = self._check_cases(problems)
        self._check_names(problems)
        self.templates: dict[str, tuple[tuple[str, Template], ...]] = self._check_templates(
            problems
        )
        self.routes: dict[str, str] = self._check_providers(problems)
        if problems:
            raise SpecError(problems)

    def _where(self, path: KeyPath, message: str, hint: str | None = None) -> Problem:
        return Problem(message, self.source, line_of(self._lines, path), format_path(path), hint)

    def _problem_from_pydantic(self, err: Mapping[str, Any]) -> Problem:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            close = difflib.get_close_matches(key, _known_keys(loc), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "remove it or fix its spelling"
            return self._where(loc, f"unknown key {key!r}", hint)
        if err["type"] == "missing":
            return self._where(loc, "missing required key", "add it (see `promptgrid schema`)")
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
        return self._where(loc, f"{err['msg'].lower()}{shown}", "see `promptgrid schema`")

    def _check_params(self, problems: list[Problem]) -> dict[str, tuple[Any, ...]]:
        axes: dict[str, tuple[Any, ...]] = {}
        for key, raw in self.spec.params.items():
            if key not in ParamValues.model_fields:
                close = difflib.get_close_matches(key, list(ParamValues.model_fields), n=1)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else ("vendor-specific parameters go under extra_body:")
                )
                problems.append(self._where(("params", key), f"unknown parameter {key!r}", hint))
                continue
            is_axis = isinstance(raw, list) and (
                key not in LIST_VALUED_PARAMS or any(isinstance(v, list) for v in raw)
            )
            values = list(raw) if is_axis else [raw]
            if is_axis and not values:
                problems.append(
                    self._where(("params", key), "empty axis", "give at least one value")
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
        if "model" not in self.spec.params:
            problems.append(
                self._where(("params",), "params.model is required", "e.g. model: gpt-4o-mini")
            )
        return axes

    def _check_cases(self, problems: list[Problem]) -> CaseSource:
        spec = self.spec
        if spec.cases is not None and spec.cases_file is not None:
            problems.append(
                self._where(("cases_file",), "give cases or cases_file, not both", None)
            )
        for name, values in spec.vars.items():
            if not values:
                problems.append(
                    self._where(("vars", name), "empty axis", "give at least one value")
                )
        if spec.cases_file is not None:
            where = self._where(("cases_file",), "")
            source, file_problems = CaseSource.from_file(self.base_dir / spec.cases_file, where)
            problems.extend(file_problems)
            self._cases_unknown = bool(file_problems)
            return source
        source = CaseSource.from_rows(spec.cases)
        if spec.cases is not None and not spec.cases:
            problems.append(self._where(("cases",), "empty list of cases", "add rows"))
        for i, row in enumerate(spec.cases or []):
            if set(row) != set(source.columns):
                problems.append(
                    self._where(
                        ("cases", i),
                        f"keys {sorted(row)} differ from the first case's {list(source.columns)}",
                        "give every case the same keys",
                    )
                )
        return source

    def _check_names(self, problems: list[Problem]) -> None:
        params = set(self.param_axes)
        for section, names in (("vars", self.vars), ("cases", self.cases.columns)):
            for name in names:
                path = ("vars", name) if section == "vars" else ("cases",)
                if section == "cases" and self.spec.cases_file is not None:
                    path = ("cases_file",)
                if name in RESERVED_COLUMNS:
                    problems.append(self._where(path, f"{name!r} is a result column", "rename it"))
                elif name in params:
                    problems.append(
                        self._where(
                            path,
                            f"{name!r} is both a {section[:-1]} and a parameter",
                            "rename one of them: they would be the same result column",
                        )
                    )
                elif section == "vars" and (not name.isidentifier() or keyword.iskeyword(name)):
                    problems.append(
                        self._where(
                            path, f"{name!r} is not a valid variable name", "use a-z, 0-9, _"
                        )
                    )
        for name in set(self.vars) & set(self.cases.columns):
            problems.append(
                self._where(
                    ("vars", name), f"{name!r} is both a var and a case column", "rename one"
                )
            )

    def _check_templates(
        self, problems: list[Problem]
    ) -> dict[str, tuple[tuple[str, Template], ...]]:
        known = set(self.vars) | set(self.cases.columns)
        compiled: dict[str, tuple[tuple[str, Template], ...]] = {}
        for name, messages in self.spec.prompts.items():
            out = []
            for i, message in enumerate(messages):
                path = ("prompts", name, i, "content")
                if path not in self._lines and (("prompts", name) in self._lines):
                    path = ("prompts", name)  # the one-string shorthand
                template, error = compile_template(message.content)
                if error is not None:
                    line = line_of(self._lines, path)
                    problems.append(
                        Problem(
                            f"template syntax error: {error.message}",
                            self.source,
                            line + error.lineno - 1 if line and error.lineno else line,
                            format_path(path),
                            "fix the Jinja2 syntax: variables are written {{ name }}",
                        )
                    )
                    continue
                for var in sorted(template.variables - known) if not self._cases_unknown else ():
                    close = difflib.get_close_matches(var, sorted(known), n=1)
                    hint = (
                        f"did you mean {close[0]!r}?"
                        if close
                        else "define it under vars:, or as a column of cases / cases_file"
                    )
                    problems.append(self._where(path, f"undefined template variable {var!r}", hint))
                out.append((message.role, template))
            compiled[name] = tuple(out)
        return compiled

    def _check_providers(self, problems: list[Problem]) -> dict[str, str]:
        """Map each model to the provider that serves it; check provider names."""
        spec = self.spec
        known = sorted({*BUILTIN_PROVIDERS, *spec.providers})
        if spec.provider not in known:
            close = difflib.get_close_matches(spec.provider, known, n=1)
            problems.append(
                self._where(
                    ("provider",),
                    f"unknown provider {spec.provider!r}",
                    f"did you mean {close[0]!r}?" if close else f"use one of {known}",
                )
            )
        routes: dict[str, str] = {}
        for pname, config in spec.providers.items():
            for i, model in enumerate(config.models):
                if model in routes:
                    problems.append(
                        self._where(
                            ("providers", pname, "models", i),
                            f"model {model!r} is already listed under provider {routes[model]!r}",
                            "list each model under one provider",
                        )
                    )
                routes[model] = pname
        return routes

    # ------------------------------------------------------------------ derived values

    def provider_for(self, model: str, override: str | None = None) -> str:
        """The provider name a cell with this model is sent to."""
        return override or self.routes.get(model, self.spec.provider)

    def provider_config(self, name: str) -> ProviderConfig:
        """The endpoint configuration of a provider name (built-ins included)."""
        if name in self.spec.providers:
            return self.spec.providers[name]
        if name in BUILTIN_PROVIDERS:
            config = ProviderConfig(type=name)  # type: ignore[arg-type]
            return config
        raise SpecError(
            Problem(f"unknown provider {name!r}", hint=f"use one of {self.provider_names()}")
        )

    def provider_names(self) -> list[str]:
        """Every provider name this experiment can use."""
        return sorted({*BUILTIN_PROVIDERS, *self.spec.providers})

    def limits_for(self, name: str) -> Limits:
        """The limits of one provider: its own, else the experiment's (for the default one)."""
        own = self.spec.providers[name].limits if name in self.spec.providers else Limits()
        base = self.spec.limits if name == self.spec.provider else Limits()
        merged = {**base.model_dump(exclude_none=True), **own.model_dump(exclude_none=True)}
        merged.setdefault("timeout_s", self.spec.limits.timeout_s)
        return Limits(**merged)

    @property
    def axes(self) -> dict[str, int]:
        """Length of each axis of the grid, in grid order (outermost first)."""
        out = {"prompt": len(self.templates)}
        if self.cases.columns:
            out["cases"] = self.cases.count
        out.update({name: len(values) for name, values in self.vars.items()})
        out.update({k: len(v) for k, v in self.param_axes.items() if len(v) > 1})
        out["repeat"] = self.spec.repeats
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
        return [(name, _kind(seen.get(name, set()))) for name in order]

    def iter_cases(self) -> Iterator[dict[str, Any]]:
        """The case rows (one empty row when there are none), streamed."""
        return self.cases.rows()

    def to_dict(self) -> dict[str, Any]:
        """The experiment as a mapping shaped like the file (defaults left out)."""
        return self.spec.model_dump(mode="json", exclude_defaults=True)

    def to_yaml(self) -> str:
        """The experiment as YAML, loadable with ``Experiment.from_yaml``."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, cells={self.total})"

    # ------------------------------------------------------------------ running

    def plan(self, **overrides: Any) -> Any:
        """Calls per axis, in total and already cached (see ``promptgrid.plan``)."""
        from .api import plan

        return plan(self, **overrides)

    def run(self, **overrides: Any) -> Any:
        """Run the grid and return the DataFrame (see ``promptgrid.run``)."""
        from .api import run

        return run(self, **overrides)

    async def arun(self, **overrides: Any) -> Any:
        """Run the grid in the current event loop (see ``promptgrid.arun``)."""
        from .api import arun

        return await arun(self, **overrides)


def _kind(type_names: set[str]) -> str:
    names = type_names - {"NoneType"}
    if names <= {"int", "float"} and "float" in names:
        return "float"
    if len(names) == 1 and (name := next(iter(names))) in ("str", "int", "bool"):
        return name
    return "json" if names else "str"


def _default_name(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "_.-" else "-" for c in path.stem)
    return stem.strip("-.") or "experiment"


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where an unknown key was found, for did-you-mean."""
    parents = [p for p in loc[:-1] if isinstance(p, str)]
    model: type[BaseModel] = ExperimentFile
    if parents[:1] == ["limits"] or parents[-1:] == ["limits"]:
        model = Limits
    elif parents[:1] == ["retry"]:
        model = RetryPolicy
    elif parents[:1] == ["providers"] and len(parents) >= 2:
        model = ProviderConfig
    elif parents[:1] == ["prompts"]:
        model = Message
    elif parents[:1] == ["params"]:
        model = ParamValues
    return list(model.model_fields)
