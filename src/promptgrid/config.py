"""One resolved run configuration: the experiment plus the caller's options, decided once.

``resolve(experiment, options)`` answers, in one place, every question a run asks: which
endpoint each model goes to, each endpoint's base URL, key variable and limits (the file's,
the provider's, then the caller's overrides), the files to write, the results directory, the
cache policy. ``run``, ``plan``, ``resume``, ``retry`` and the CLI read the resulting
:class:`RunConfig`; nothing downstream asks the experiment or the options again.

A run records :meth:`RunConfig.record` in the store. Resume and retry rebuild the configuration
from that record (``resolve(..., recorded=...)``): the same endpoints (the recorded base URLs, not
whatever ``OPENAI_BASE_URL`` says today), the same overrides, the same formats. An explicit
option that would send the run elsewhere (another provider or base URL) is refused; limits,
concurrency and formats may be changed for the rest of the run. A shard's run (``--shard I/N``)
records its shard with the grid it is part of; resume and retry keep it (another shard is
refused).

Credentials a base URL carries (``user:pass@``, ``?api-key=``) are never recorded: an
endpoint's ``endpoint_id`` (hashed, recorded, shown) is the URL's public form, and the URL
called (``credentialed``) comes from the file or the options at hand (see ``credentials``).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .apis import batch_url
from .credentials import HIDDEN, public_url
from .errors import PromptgridWarning, SpecError, UsageError
from .exports import parse_formats
from .presets import PRESETS
from .pricing import Price, Pricing
from .shards import Shard, recorded_shard
from .spec import Experiment
from .spec.schema import (
    BUILTIN_PROVIDERS,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT_S,
    BatchSpec,
    Limits,
    PriceSpec,
    ProviderConfig,
    RaceSpec,
    RetryPolicy,
)
from .tokens import max_output_tokens

__all__ = ["DEFAULT_BASE_URL", "EndpointConfig", "Host", "RunConfig", "RunOptions", "resolve"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
#: Options that decide where requests go: a resume may not change them.
_ROUTING = ("provider", "base_url")
#: Options a resume may change for the rest of the run (recorded values are the default).
_ADJUSTABLE = ("rpm", "tpm", "concurrency", "formats", "max_cost")


def check_max_cost(cap: object) -> None:
    """Raise :class:`UsageError` unless ``cap`` is None or a finite amount of USD above 0: NaN,
    infinity and 0 would each mean "no cap" somewhere downstream."""
    if cap is None:
        return
    if isinstance(cap, bool) or not isinstance(cap, int | float) or not 0 < cap < math.inf:
        raise UsageError(
            f"max_cost must be a finite amount of USD above 0 (--max-cost on the command line), "
            f"not {cap!r}"
        )


def resolve_base_url(base_url: str | None) -> str:
    """The effective base URL: ``base_url``, else ``OPENAI_BASE_URL``, else OpenAI's; no
    trailing slash."""
    url = (base_url or "").strip() or os.environ.get("OPENAI_BASE_URL", "").strip()
    return (url or DEFAULT_BASE_URL).rstrip("/")


@dataclass(frozen=True)
class RunOptions:
    """What a caller can say besides the experiment (CLI flags, ``run()`` keywords).

    ``None`` means "not given": the recorded value on resume and retry, else the default.
    """

    results_dir: Path = Path("results")
    provider: str | None = None  # send every cell to this provider
    base_url: str | None = None  # for the target provider (the default one, or ``provider``)
    rpm: float | None = None  # limit overrides for the target provider
    tpm: int | None = None
    concurrency: int | None = None
    formats: tuple[str, ...] | None = None
    use_cache: bool | None = None
    max_cost: float | None = None  # USD: the run never spends more (else the file's budget)
    progress: bool | None = None  # None: when output is a terminal or a notebook
    grace_s: float = 5.0
    #: True: through the providers' Batch APIs (those that have one); False: every call
    #: online; None: as the file says (``batch:``). Not recorded: a resume or retry chooses.
    batch: bool | None = None
    wait: bool = False  # batch mode: wait for the batches and collect them before returning
    #: The race: None as the file says, False none (the full grid), or settings over the
    #: file's ``race:`` (see ``race.options``). Recorded: a resume races as the run started.
    race: Mapping[str, Any] | bool | None = None

    #: Run only this shard of the grid (``--shard I/N``; see ``promptgrid.shards``). Recorded:
    #: a resume or retry keeps the run's own.
    shard: Shard | None = None

    def __post_init__(self) -> None:
        check_max_cost(self.max_cost)  # the door every caller (run, plan, score, the CLI) takes

    def given(self) -> dict[str, Any]:
        """The recordable options the caller set (routing and adjustable ones)."""
        return {
            k: getattr(self, k)
            for k in (*_ROUTING, *_ADJUSTABLE, "use_cache", "race")
            if getattr(self, k) is not None
        }


@dataclass(frozen=True)
class Host:
    """Where one endpoint's calls go: its provider name, URL (credentials shown as ``***``;
    ``None`` for the offline echo provider) and the environment variable its key is read
    from (``None``: it sends none; sent whenever it is set, unless ``key_required``, when a
    missing key stops the run instead)."""

    provider: str
    url: str | None
    key_env: str | None
    key_required: bool = False  #: no key is an error (else it is sent when it is set)

    def __str__(self) -> str:
        if self.url is None:
            return f"{self.provider} echo (offline: nothing is sent)"
        if self.key_env is None:
            return f"{self.provider} {self.url} (no key)"
        when = "" if self.key_required else ", if set"
        return f"{self.provider} {self.url} (key from ${self.key_env}{when})"


@dataclass(frozen=True)
class EndpointConfig:
    """One endpoint as a run uses it."""

    name: str  #: the provider name (``echo``, ``openai``, or one under ``providers:``)
    kind: str  #: ``echo`` or ``openai``
    #: ``echo`` or the base URL (Azure's deployment-based API: ``<resource>?api-version=...``),
    #: credentials replaced by ``***`` (see ``promptgrid.credentials``); part of every
    #: request's hash, recorded and shown
    endpoint_id: str
    api_key_env: str | None  #: where the key is read from (never the key itself)
    key_required: bool  #: no key is an error (OpenAI's own URL, a preset's, an explicit one)
    limits: Limits  #: the limits in force, timeout and answer size included
    pricing: Pricing = field(default_factory=Pricing)  #: how its calls are priced
    api: str = "chat"  #: ``chat`` or ``responses``; part of every request's hash
    preset: str | None = None  #: the vendor preset it came from
    api_version: str | None = None  #: Azure's deployment-based API version
    deployments: Mapping[str, str] = field(default_factory=dict)  #: model -> deployment sent
    #: Batch mode: its calls go through the Batch API, in files split at these limits (None:
    #: online).
    batch: BatchSpec | None = None
    #: The endpoint id with the credentials its URL carries: what is called, never written.
    credentialed: str | None = field(default=None, repr=False)

    @property
    def batch_url(self) -> str:
        """The ``url`` of its batch lines (and its batches' ``endpoint``)."""
        return batch_url(self.api, azure=self.preset == "azure")

    @property
    def free(self) -> bool:
        """Calls cost nothing (the offline echo provider, or ``pricing: free``)."""
        return self.pricing.free

    @property
    def base_url(self) -> str | None:
        """The URL to call, credentials included (``None`` for echo)."""
        if self.kind == "echo":
            return None
        return (self.credentialed or self.endpoint_id).split("?api-version=")[0]

    @property
    def key_env(self) -> str | None:
        """The environment variable its key is read from (``None``: it takes no key)."""
        if self.kind == "echo":
            return None
        return self.api_key_env or (None if self.preset else DEFAULT_KEY_ENV)

    @property
    def host(self) -> Host:
        """Where its calls go and where their key comes from (for plans and run starts)."""
        url = None if self.kind == "echo" else self.endpoint_id
        return Host(self.name, url, self.key_env, self.key_required and url is not None)

    def model_sent(self, model: str) -> str:
        """The model name a request sends for ``model`` (an Azure deployment, when mapped)."""
        return self.deployments.get(model, model)

    def api_key(self) -> str | None:
        """The key from the environment; ``None`` where the server needs none.

        Raises :class:`UsageError` (nothing is written) when a required key is missing, or
        when the URL's credentials are not at hand (a resumed run's, which are not recorded)."""
        if self.kind != "echo" and self.credentialed is None and HIDDEN in self.endpoint_id:
            raise UsageError(
                f"provider {self.name!r} called {self.endpoint_id} with credentials in its URL, "
                "which are not recorded: give the same base URL again (in the file, "
                "OPENAI_BASE_URL or --base-url; retry, score and batch collect read the run's "
                "experiment file, which has moved or changed)"
            )
        env = self.key_env
        if env is None:  # echo, or a local server's preset: no key, never OpenAI's sent to it
            return None
        key = os.environ.get(env, "").strip()
        if key:
            return key
        if self.key_required:
            raise UsageError(
                f"no API key: set {env} in the environment for {self.endpoint_id}, "
                "or run offline with --provider echo"
            )
        return None


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs to know, resolved once (see the module docstring)."""

    experiment: Experiment
    results_dir: Path
    endpoints: Mapping[str, EndpointConfig]  #: the endpoints the grid's cells go to
    routes: Mapping[str, str]  #: model -> endpoint name
    concurrency: int  #: default worker pool size per endpoint
    retry: RetryPolicy
    formats: tuple[str, ...]
    use_cache: bool
    progress: bool | None
    grace_s: float
    given: Mapping[str, Any] = field(default_factory=dict)  #: the caller's recordable options
    max_cost: float | None = None  #: USD the run may spend at most
    judges: Mapping[str, str] = field(default_factory=dict)  #: judge score -> endpoint name
    wait: bool = False  #: batch mode: wait for the batches and collect them
    #: Endpoints batch mode was asked of that have no Batch API, and why: they answer online.
    online_anyway: Mapping[str, str] = field(default_factory=dict)
    shard: Shard | None = None  #: the run walks only this shard's cells (None: the whole grid)

    @property
    def race(self) -> RaceSpec | None:
        """The race the run runs: the experiment's ``race:``, unless the run was told not to
        race (``race=False``, ``--no-race``: the full grid)."""
        return None if self.given.get("race") is False else self.experiment.file.race

    @property
    def batch_endpoints(self) -> list[str]:
        """The endpoints whose calls go through their Batch API in this session."""
        return [name for name, e in self.endpoints.items() if e.batch is not None]

    def judge_models(self) -> list[tuple[str, str, Mapping[str, Any]]]:
        """(model, endpoint name, request params) of each judge."""
        out: list[tuple[str, str, Mapping[str, Any]]] = []
        for score in self.experiment.scores:
            if score.judge is not None:
                params = {**score.judge.params, "model": score.judge.model}
                out.append((score.judge.model, self.judges[score.name], params))
        return out

    @property
    def unpriced(self) -> list[tuple[str, str]]:
        """(model, endpoint) pairs whose calls would cost something unknown."""
        pairs = [*self.routes.items(), *((m, e) for m, e, _ in self.judge_models())]
        return [
            (model, name)
            for model, name in dict.fromkeys(pairs)
            if self.endpoints[name].pricing.price(model) is None
        ]

    @property
    def warnings(self) -> list[str]:
        """Things about the experiment and its run worth a look that do not stop it."""
        online = [
            f"provider {name!r} answers online: {why}" for name, why in self.online_anyway.items()
        ]
        return (
            [str(w) for w in self.experiment.warnings]
            + online
            + [
                f"no price for model {model!r} (endpoint {name!r}): its cost_usd stays empty and "
                f"plans leave it out; price it in the file, e.g. pricing: {{{model}: {{input: 0.5, "
                f"output: 1.5}}}} (USD per 1M tokens), or set pricing: free on a local provider"
                for model, name in self.unpriced
            ]
        )

    def warn(self) -> None:
        """Emit :attr:`warnings` as :class:`~promptgrid.errors.PromptgridWarning` (the CLI
        prints them as ``warning: ...``)."""
        for text in self.warnings:
            warnings.warn(text, PromptgridWarning, stacklevel=3)

    @property
    def target(self) -> str:
        """The provider that overrides apply to: ``--provider``, else the file's default."""
        return str(self.given.get("provider") or self.experiment.file.provider)

    def check_budget(self) -> None:
        """With a budget, every paid call must have a worst case: a known price, and an output
        limit (``max_tokens``) or a model whose own limit is known. Raise :class:`UsageError`
        naming what is missing."""
        if self.max_cost is None:
            return
        problems = []
        calls: list[tuple[str, str, Iterator[Mapping[str, Any]]]] = [
            (m, e, self.experiment.param_combos(m)) for m, e in self.routes.items()
        ]
        calls += [(m, e, iter([params])) for m, e, params in self.judge_models()]
        for model, name, combos in calls:
            pricing = self.endpoints[name].pricing
            price = pricing.price(model)
            if price is None:
                problems.append(f"model {model!r} has no price (pricing: in the file)")
                continue
            if pricing.free or price.max_output is not None:
                continue
            for params in combos:
                if max_output_tokens(params) is None:
                    problems.append(
                        f"calls to {model!r} have no output limit: set max_tokens (or "
                        f"pricing: {{{model}: {{..., max_output_tokens: N}}}})"
                    )
                    break
        problems = list(dict.fromkeys(problems))
        if problems:
            raise UsageError(
                f"a budget (--max-cost {self.max_cost:g}) needs the worst case of every call: "
                + "; ".join(problems)
            )

    def check_keys(self) -> None:
        """Raise :class:`UsageError` if an endpoint's required key is missing."""
        for endpoint in self.endpoints.values():
            endpoint.api_key()

    @property
    def hosts(self) -> list[Host]:
        """Every endpoint the run calls (judges' too), by provider name."""
        return [self.endpoints[name].host for name in sorted(self.endpoints)]

    @property
    def python_scorers(self) -> list[str]:
        """The ``python:`` scorers (``module:function``) the run imports and calls."""
        return [str(s.spec.python) for s in self.experiment.scores if s.kind == "python"]

    def disclosure(self) -> list[str]:
        """What the run does beyond the grid, said at its start: the hosts it sends requests
        (and keys) to, and the code it runs. Nothing to say for echo alone without code."""
        lines = []
        if any(host.url is not None for host in self.hosts):
            lines += [f"calls go to: {host}" for host in self.hosts]
        if self.python_scorers:
            lines.append(f"python scorers run as code here: {', '.join(self.python_scorers)}")
        return lines

    def endpoint_for(self, model: str) -> EndpointConfig:
        """The endpoint a cell with this model is sent to."""
        return self.endpoints[self.routes[model]]

    def record(self) -> dict[str, Any]:
        """What the store keeps to resume or retry this run exactly (JSON; never a key, nor
        the credentials of a URL)."""
        given = {k: list(v) if isinstance(v, tuple) else _public(v) for k, v in self.given.items()}
        return {**given, "endpoints": {n: e.endpoint_id for n, e in self.endpoints.items()}}

    def with_output(self, *, formats: tuple[str, ...] | None = None) -> RunConfig:
        """The same configuration writing other formats."""
        return self if formats is None else replace(self, formats=formats)


def resolve(
    experiment: Experiment, options: RunOptions, recorded: Mapping[str, Any] | None = None
) -> RunConfig:
    """Resolve a run's configuration; ``recorded`` is a run's :meth:`RunConfig.record` (resume,
    retry), whose choices stand unless ``options`` change an adjustable one.

    Raises :class:`UsageError` for an unknown provider or an option that contradicts the
    recorded run. Keys are not read here (a plan needs none): see :meth:`RunConfig.check_keys`."""
    given = _merge(options.given(), recorded)
    names = sorted({*BUILTIN_PROVIDERS, *experiment.file.providers})
    provider = given.get("provider")
    if provider is not None and provider not in names:
        raise UsageError(f"unknown provider {provider!r}; use one of {names}")
    target = provider or experiment.file.provider
    routes = {
        str(model): provider or experiment.routes.get(str(model), experiment.file.provider)
        for model in experiment.param_axes["model"]
    }
    if provider is not None:  # routing changed: the parameters must suit the new endpoint
        problems = experiment.request_problems(provider)
        if problems:
            raise SpecError(problems)
    judges = {
        score.name: provider
        or score.judge.provider
        or experiment.routes.get(score.judge.model, experiment.file.provider)
        for score in experiment.scores
        if score.judge is not None
    }
    pinned = dict(recorded.get("endpoints") or {}) if recorded else {}
    endpoints = {
        name: _endpoint(experiment, name, name == target, given, pinned.get(name))
        for name in sorted({*routes.values(), *judges.values()})
    }
    online_anyway: dict[str, str] = {}
    for name in sorted(set(routes.values())):  # judges' calls are always online
        spec, why = _batch(experiment, endpoints[name], options.batch)
        if spec is not None:
            endpoints[name] = replace(endpoints[name], batch=spec)
        elif why:
            online_anyway[name] = why
    _check_batchable(experiment, endpoints, routes)
    concurrency = (
        given.get("concurrency") or experiment.file.limits.max_concurrency or DEFAULT_CONCURRENCY
    )
    use_cache = given.get("use_cache")
    budget = experiment.file.budget
    max_cost = given.get("max_cost")
    check_max_cost(max_cost)  # also a run's recorded one, from before caps were checked
    shard = _shard(experiment, options.shard, recorded)
    if max_cost is None and budget is not None:
        max_cost = budget.max_cost_usd
    return RunConfig(
        experiment=experiment,
        results_dir=Path(options.results_dir),
        endpoints=endpoints,
        routes=routes,
        concurrency=int(concurrency),
        retry=experiment.file.retry,
        formats=parse_formats(given.get("formats")),
        use_cache=True if use_cache is None else bool(use_cache),
        progress=options.progress,
        grace_s=options.grace_s,
        given={k: v for k, v in given.items() if v is not None},
        max_cost=max_cost,
        judges=judges,
        wait=options.wait,
        online_anyway=online_anyway,
        shard=shard,
    )


def _shard(
    experiment: Experiment, given: Shard | None, recorded: Mapping[str, Any] | None
) -> Shard | None:
    """The shard the run walks: the one asked for, or a resumed run's own (which another may
    not replace)."""
    if recorded is not None:
        was = recorded_shard(recorded)
        if given is not None and given != was:
            what = f"shard {was}" if was else "the whole grid"
            raise UsageError(
                f"this run is {what}, not shard {given}: resume and retry keep the run's "
                "shard, so leave --shard out (or start a new run: answers already paid for "
                "come from the cache)"
            )
        given = was
    if given is not None and experiment.file.race is not None:
        raise UsageError(
            "a race (race:) decides which variants go on from the scores of all its cells as "
            "they come in: it cannot be cut into shards; run it on one machine, or leave "
            "race: out to run the whole grid in shards"
        )
    return given


def _merge(given: dict[str, Any], recorded: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's options over a recorded run's: routing ones must agree."""
    if recorded is None:
        return given
    merged = {k: recorded.get(k) for k in (*_ROUTING, *_ADJUSTABLE, "use_cache", "race")}
    for key in (*_ROUTING, "use_cache"):
        if key in given and _public(given[key]) != _public(recorded.get(key)):
            was = _public(recorded.get(key))
            flag = {"use_cache": "--no-cache"}.get(key, "--" + key.replace("_", "-"))
            raise UsageError(
                f"this run was made with {flag} {'(not given)' if was is None else was!r}, "
                f"not {_public(given[key])!r}: resume and retry reuse the run's settings, so leave "
                f"{flag} out (or start a new run: answers already paid for come from the cache)"
            )
    merged.update({k: v for k, v in given.items() if k in (*_ADJUSTABLE, "base_url")})
    if (formats := merged.get("formats")) is not None:
        merged["formats"] = tuple(formats)
    return merged


def _public(value: Any) -> Any:
    """An option as the record holds it: a URL without its credentials."""
    return public_url(value) if isinstance(value, str) else value


def _endpoint(
    experiment: Experiment,
    name: str,
    target: bool,
    given: Mapping[str, Any],
    pinned: str | None,
) -> EndpointConfig:
    """One endpoint; the ``target`` one (the default provider, or ``--provider``) takes the
    file's top-level limits and the caller's overrides."""
    file = experiment.file
    config = file.providers.get(name) or ProviderConfig(type="echo" if name == "echo" else "openai")
    overrides = given if target else {}
    # The file's limits: a provider's own, over the experiment's (for the target provider).
    base = file.limits if target else Limits()
    merged = {**base.model_dump(exclude_none=True), **config.limits.model_dump(exclude_none=True)}
    merged.setdefault("timeout_s", file.limits.timeout_s or DEFAULT_TIMEOUT_S)
    merged.setdefault(
        "max_response_bytes", file.limits.max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES
    )
    for key, option in (("rpm", "rpm"), ("tpm", "tpm"), ("max_concurrency", "concurrency")):
        if overrides.get(option) is not None:
            merged[key] = overrides[option]
    preset = PRESETS.get(config.preset) if config.preset else None
    base_url = overrides.get("base_url") or config.base_url or (preset.base_url if preset else None)
    if config.type == "echo":
        endpoint_id = "echo"
    elif config.preset == "azure":
        endpoint_id = _azure_endpoint(str(base_url), config.api_version)
    else:
        endpoint_id = resolve_base_url(base_url)
    called = endpoint_id  # with the credentials its URL carries, if any
    if pinned and config.type != "echo":  # a resume goes where the run went
        endpoint_id = public_url(pinned)
        # The recorded URL is called, unless it is the public form of the one at hand; one an
        # earlier version recorded holds its credentials; one without them fails in api_key().
        if pinned != endpoint_id or public_url(called) != endpoint_id:
            called = pinned
    endpoint_id = public_url(endpoint_id)
    key_env = config.api_key_env or (preset.key_env if preset else None)
    return EndpointConfig(
        name=name,
        kind=config.type,
        endpoint_id=endpoint_id,
        credentialed=called if called != endpoint_id else None,
        api_key_env=key_env,
        key_required=key_env is not None or endpoint_id == DEFAULT_BASE_URL,
        limits=Limits(**merged),
        pricing=_pricing(file.pricing, config),
        api=experiment.provider_api(name),
        preset=config.preset,
        api_version=config.api_version,
        deployments=dict(config.deployments),
    )


def _batch(
    experiment: Experiment, endpoint: EndpointConfig, option: bool | None
) -> tuple[BatchSpec | None, str]:
    """Whether an endpoint's calls go through its Batch API, with which file limits; else why
    not, when batch mode was asked of it (a file's ``batch: true`` or ``--batch``).

    The provider's own ``batch:`` decides over the experiment's; ``--batch`` / ``--no-batch``
    (``option``) over both, except that a provider set to ``batch: false`` stays online."""
    file = experiment.file
    own = file.providers[endpoint.name].batch if endpoint.name in file.providers else None
    wanted = (own if own is not None else file.batch) if option is None else option
    if not wanted or own is False:
        return None, ""
    if endpoint.kind == "echo":
        return None, ""  # offline and free: nothing to gain, nothing to say
    preset = PRESETS.get(endpoint.preset) if endpoint.preset else None
    if preset is not None and preset.no_batch:
        return None, preset.no_batch
    for spec in (own, file.batch):
        if isinstance(spec, BatchSpec):
            return spec, ""
    return BatchSpec(), ""


def _check_batchable(
    experiment: Experiment, endpoints: Mapping[str, EndpointConfig], routes: Mapping[str, str]
) -> None:
    """A Batch API answers whole responses only: a streamed request cannot go in a batch."""
    for model, name in routes.items():
        if endpoints[name].batch is None:
            continue
        if any(params.get("stream") for params in experiment.param_combos(model)):
            raise UsageError(
                f"calls to {model!r} stream (stream: true), and a Batch API answers whole "
                f"responses only: run provider {name!r} without batch mode, or drop stream"
            )


def _pricing(prices: Mapping[str, PriceSpec], config: ProviderConfig) -> Pricing:
    """An endpoint's pricing: free for echo or ``pricing: free``; else the file's prices (the
    provider's own over the experiment's) over promptgrid's table."""
    if config.type == "echo" or config.pricing == "free":
        return Pricing(free=True)
    own = config.pricing if isinstance(config.pricing, dict) else {}
    return Pricing(overrides={m: _price(p) for m, p in {**prices, **own}.items()})


def _price(spec: PriceSpec) -> Price:
    return Price(
        input=spec.input,
        output=spec.output,
        cached_input=spec.cached_input,
        batch_input=spec.batch_input,
        batch_output=spec.batch_output,
        max_output=spec.max_output_tokens,
    )


def _azure_endpoint(resource: str, api_version: str | None) -> str:
    """Azure's endpoint id: the resource and its api-version (the deployment-based API), or the
    resource's ``v1`` API (no version)."""
    resource = resource.strip().rstrip("/")
    if api_version is not None:
        return f"{resource}?api-version={api_version}"
    return resource if resource.endswith("/openai/v1") else f"{resource}/openai/v1"
