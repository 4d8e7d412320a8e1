"""The experiment file's schema: pydantic models (types, ranges, unknown keys) and the JSON
Schema editors use for completion. Everything else about validity is checked in ``experiment``.

Parameters: a list is an axis of the grid and a scalar is fixed, except for parameters whose value
is itself a list (``stop``, ``tools``, ``modalities``): for those a list of lists is an axis.

Message content is a template string, or a list of content parts (``text``, ``image_url``,
``image_file``); unions are told apart by a discriminator, so a wrong value gets one error for
the branch it meant, not one per branch. Their tags are bracketed (``[parts]``): error locations
leave bracketed names out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

LIST_VALUED_PARAMS = frozenset({"stop", "tools", "modalities"})
BUILTIN_PROVIDERS = ("echo", "openai")
ROLES = ("system", "developer", "user", "assistant", "tool")
DEFAULT_CONCURRENCY = 50
DEFAULT_TIMEOUT_S = 60.0
#: The most an answer may be, in bytes after decompression (a stream: all its events together).
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _none_is_empty(value: Any) -> Any:
    # ``params:`` with nothing under it is YAML null; treat it as an empty mapping.
    return {} if value is None else value


EmptyOk = BeforeValidator(_none_is_empty)


def _user_shorthand(value: Any) -> Any:
    return [{"role": "user", "content": value}] if isinstance(value, str) else value


Detail = Literal["auto", "low", "high"]


class TextPart(_Model):
    """A text content part; ``text`` is a Jinja2 template."""

    type: Literal["text"]
    text: str


class ImageURL(_Model):
    """An image by URL (``https://...`` or ``data:image/...;base64,...``); a template."""

    url: str
    detail: Detail | None = None


def _url_shorthand(value: Any) -> Any:
    return {"url": value} if isinstance(value, str) else value


class ImageUrlPart(_Model):
    """An image the server fetches (or a data URL), as OpenAI writes it."""

    type: Literal["image_url"]
    image_url: Annotated[ImageURL, BeforeValidator(_url_shorthand)]


class ImageFilePart(_Model):
    """A local image, sent as a data URL. ``path`` (a template) is relative to the experiment
    file; it may come from a var or a case column."""

    type: Literal["image_file"]
    path: str
    detail: Detail | None = None


def _part_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else None
    return f"[{kind}]" if kind in ("text", "image_url", "image_file") else None


ContentPart = Annotated[
    Annotated[TextPart, Tag("[text]")]
    | Annotated[ImageUrlPart, Tag("[image_url]")]
    | Annotated[ImageFilePart, Tag("[image_file]")],
    Discriminator(
        _part_tag,
        custom_error_type="content_part",
        custom_error_message="a content part needs type: text, image_url or image_file",
    ),
]


def _content_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "[str]"
    return "[parts]" if isinstance(value, list) else None


Content = Annotated[
    Annotated[str, Tag("[str]")] | Annotated[list[ContentPart], Tag("[parts]")],
    Discriminator(
        _content_tag,
        custom_error_type="content",
        custom_error_message="content must be a text (a template) or a list of content parts",
    ),
]


class FunctionCall(_Model):
    """The function of a tool call in a prompt's history."""

    name: str
    arguments: str | dict[str, Any] = Field(
        "{}", description="JSON text, or a mapping (sent as JSON)"
    )


class ToolCall(_Model):
    """A tool call an assistant message made (for multi-turn prompts with tool results)."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Model):
    """One chat message: ``content`` is a template or a list of content parts. An assistant
    message may carry ``tool_calls`` (and no content); a ``tool`` message answers the call
    named by ``tool_call_id``."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Content | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class Limits(_Model):
    """Rate limits for an endpoint; unset rpm/tpm are learned from the server's headers."""

    rpm: float | None = Field(None, gt=0, description="requests per minute")
    tpm: int | None = Field(None, gt=0, description="tokens per minute")
    max_concurrency: int | None = Field(None, gt=0, description="calls in flight at most")
    timeout_s: float | None = Field(None, gt=0, description="seconds before one call times out")
    max_response_bytes: int | None = Field(
        None, ge=1024, description="bytes an answer may have, decompressed (default 32 MiB)"
    )


class RetryPolicy(_Model):
    """How failing calls are retried (429, 5xx, timeouts, dropped connections, bad bodies)."""

    max_attempts: int = Field(6, ge=1, le=100, description="attempts per cell, first included")
    max_wait_s: float = Field(120.0, gt=0, description="longest wait between two attempts")


ApiKind = Literal["chat", "responses"]


class PriceSpec(_Model):
    """A model's price, USD per million tokens."""

    # Finite: an infinite or NaN price would turn every budget check into "no cap".
    input: float = Field(ge=0, allow_inf_nan=False, description="USD per 1M input tokens")
    output: float = Field(ge=0, allow_inf_nan=False, description="USD per 1M output tokens")
    cached_input: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="default: as input"
    )
    batch_input: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="default: half of input"
    )
    batch_output: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="default: half of output"
    )
    max_output_tokens: int | None = Field(
        None, ge=1, description="the model's own output limit: the worst case when unbounded"
    )


class Files(_Model):
    """Where local files (``image_file`` paths) may be read from, besides the experiment's
    folder."""

    allow: list[str] = Field(
        default_factory=list,
        description="more folders image files may come from (relative to this file, or absolute)",
    )


class Budget(_Model):
    """A hard cap on what a run may spend."""

    max_cost_usd: float = Field(
        gt=0, allow_inf_nan=False, description="the run never spends more (USD)"
    )


#: OpenAI's limits of one Batch API input file (``batch: {max_requests, max_bytes}`` lowers
#: them): 50,000 requests and 200 MB (counted as 200,000,000 bytes, the smaller reading).
BATCH_MAX_REQUESTS = 50_000
BATCH_MAX_BYTES = 200_000_000


class BatchSpec(_Model):
    """Batch mode: the grid goes through the provider's Batch API (see
    ``promptgrid.engine.batch.driver``), its request files split at these limits."""

    max_requests: int = Field(BATCH_MAX_REQUESTS, ge=1, description="requests per file at most")
    max_bytes: int = Field(
        BATCH_MAX_BYTES, ge=1, description="bytes per file at most (OpenAI: 200 MB)"
    )


def _batch_shorthand(value: Any) -> Any:
    # ``batch: {}`` means batch mode with the defaults.
    return BatchSpec() if value == {} else value


def _batch_tag(value: Any) -> str | None:
    if isinstance(value, bool):
        return "[bool]"
    return "[limits]" if isinstance(value, (dict, BatchSpec)) else None


#: ``batch: true | false | {max_requests, max_bytes}``.
BatchSetting = Annotated[
    Annotated[bool, Tag("[bool]")] | Annotated[BatchSpec, Tag("[limits]")],
    Discriminator(
        _batch_tag,
        custom_error_type="batch",
        custom_error_message="batch must be true, false or {max_requests, max_bytes}",
    ),
    BeforeValidator(_batch_shorthand),
]


class ProviderConfig(_Model):
    """An OpenAI-compatible endpoint; models listed in ``models`` are sent to it."""

    type: Literal["openai", "echo"] = "openai"
    preset: str | None = Field(
        None, description="a vendor: anthropic, azure, gemini, groq, lmstudio, mistral, "
        "ollama, openrouter, together, vllm (fills base_url and api_key_env)",
    )  # fmt: skip
    api: ApiKind | None = Field(None, description="chat (default) or responses")
    base_url: str | None = Field(None, description="default: OPENAI_BASE_URL or api.openai.com")
    api_key_env: str | None = Field(None, description="env var holding the key; OPENAI_API_KEY")
    api_version: str | None = Field(None, description="Azure: the api-version query parameter")
    deployments: dict[str, str] = Field(
        default_factory=dict, description="Azure: model name -> deployment name"
    )
    models: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    pricing: Literal["free"] | dict[str, PriceSpec] | None = Field(
        None, description="free (a local server), or prices of this endpoint's models"
    )
    batch: BatchSetting | None = Field(
        None, description="true, false, or {max_requests, max_bytes}: this provider's calls "
        "through its Batch API (default: the experiment's batch)",
    )  # fmt: skip


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
    max_output_tokens: int | None = Field(None, ge=1)
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    reasoning: dict[str, Any] | None = Field(None, description="Responses API: effort, summary")
    text: dict[str, Any] | None = Field(None, description="Responses API: format, verbosity")
    verbosity: str | None = None
    stream: bool | None = Field(None, description="stream the answer: measures ttft_s")
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


class JudgeSpec(_Model):
    """An LLM that grades each answer with a rubric (see ``promptgrid.scoring.judge``)."""

    rubric: Annotated[list[Message], BeforeValidator(_user_shorthand)] = Field(
        min_length=1,
        description="chat messages (or one string: a user message); Jinja2 templates that see "
        "answer, prompt, messages and the row's vars, case columns and params",
    )
    model: str = Field(description="the judge's model")
    provider: str | None = Field(None, description="where judge calls go; default: as the model")
    scale: Literal["pass_fail"] | Annotated[int, Field(ge=2, le=100)] = Field(
        "pass_fail", description="pass_fail, or N for a score from 1 to N"
    )
    params: Annotated[dict[str, Any], EmptyOk] = Field(
        default_factory=dict, description="chat-completion parameters of the judge's calls"
    )


class JsonPathCheck(_Model):
    """``json_path``: the value at ``path`` in the answer's JSON equals ``equals``."""

    path: str = Field(description="$.key.sub[0] or $['a key']")
    equals: Any = Field(description="a value, or a template compared with the value's text")


class CloseTo(_Model):
    """``close_to``: the answer is a number within the tolerance of ``value``."""

    value: float | str = Field(description="a number, or a template that renders one")
    tolerance: float = Field(1e-9, ge=0, description="absolute tolerance")
    relative: float = Field(0.0, ge=0, description="relative tolerance")


#: A score's time limit on one answer unless it says (``timeout_s``).
DEFAULT_SCORE_TIMEOUT_S = 5.0


class ScoreSpec(_Model):
    """One named check of each answer: exactly one kind, and options."""

    equals: str | int | float | bool | None = None
    contains: str | None = None
    not_contains: str | None = None
    icontains: str | None = None
    starts_with: str | None = None
    regex: str | None = Field(
        None, description="a Python regex, searched (anchor with ^ and $); re2 runs it if it can"
    )
    one_of: list[str] | None = Field(None, min_length=1, description="a set of labels")
    is_json: Literal[True] | None = None
    json_schema: dict[str, Any] | None = None
    json_path: JsonPathCheck | None = None
    min_length: int | None = Field(None, ge=0, description="characters")
    max_length: int | None = Field(None, ge=0, description="characters")
    close_to: CloseTo | None = None
    python: str | None = Field(None, description="package.module:function")
    judge: JudgeSpec | None = None
    strip: bool = Field(True, description="ignore whitespace around the answer")
    ignore_case: bool = Field(False, description="compare text case-insensitively")
    timeout_s: float = Field(
        DEFAULT_SCORE_TIMEOUT_S, gt=0, le=3600,
        description="seconds this score may take on one answer; longer is that row's error",
    )  # fmt: skip


#: The kinds of score, in the order docs/scores.md lists them; the rest of ScoreSpec are options.
SCORE_KINDS = (
    "equals", "contains", "not_contains", "icontains", "starts_with", "regex", "one_of",
    "is_json", "json_schema", "json_path", "min_length", "max_length", "close_to", "python",
    "judge",
)  # fmt: skip


class RaceSpec(_Model):
    """Race the variants of ``factor`` on ``score``: stop running those confidently worse than
    another (see ``promptgrid.race``)."""

    score: str = Field(description="the score that decides: a name under scores")
    factor: str = Field("prompt", description="what competes: prompt, a parameter or a var")
    confidence: float = Field(
        0.95, gt=0, lt=1, description="the chance that the best variant is never dropped"
    )
    min_cases: int = Field(20, ge=1, description="blocks every variant runs before any drop")
    keep: int = Field(1, ge=1, description="stop when this many variants survive")
    seed: int = Field(0, ge=0, description="of the order the blocks are run in")
    bounds: tuple[float, float] | None = Field(
        None, description="[low, high]: the values a python scorer's score lies between "
        "(default [0, 1]; a bool score is 0 to 1, a judge's 1 to its scale)",
    )  # fmt: skip

    def bounds_for(self, scores: Mapping[str, ScoreSpec]) -> tuple[float, float]:
        """The values ``score`` lies between, given the scores' definitions: 1 to N for a
        judge's 1..N scale, else ``bounds`` (default 0 to 1: a pass/fail score)."""
        spec = scores.get(self.score) or scores.get(self.score.partition(".")[0])
        if spec is not None and spec.judge is not None and spec.judge.scale != "pass_fail":
            return (1.0, float(spec.judge.scale))
        return self.bounds or (0.0, 1.0)


class ExperimentFile(_Model):
    """The experiment file, as written."""

    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100,
        description="names the results folder; default: the file name",
    )  # fmt: skip
    description: str = ""
    provider: str = Field("openai", description="echo, openai, or a name under providers")
    api: ApiKind = Field("chat", description="chat or responses, for providers that say neither")
    providers: Annotated[dict[str, ProviderConfig], EmptyOk] = Field(default_factory=dict)
    prompts: dict[str, Annotated[list[Message], BeforeValidator(_user_shorthand)]] = Field(
        min_length=1
    )
    vars: Annotated[dict[str, list[Any]], EmptyOk] = Field(default_factory=dict)
    cases: list[dict[str, Any]] | None = None
    cases_file: str | None = Field(None, description="CSV or JSONL, relative to this file")
    files: Files = Field(
        default_factory=Files, description="allow: folders image files may come from, besides "
        "the experiment's own",
    )  # fmt: skip
    params: Annotated[dict[str, Any], EmptyOk] = Field(default_factory=dict)
    repeats: int = Field(1, ge=1, le=10_000)
    limits: Limits = Field(default_factory=Limits)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    pricing: Annotated[dict[str, PriceSpec], EmptyOk] = Field(
        default_factory=dict, description="model -> price, over promptgrid's table"
    )
    budget: Budget | None = None
    batch: BatchSetting | None = Field(
        None, description="true, or {max_requests, max_bytes}: send the grid through the "
        "providers' Batch APIs (half the price, results within 24 h)",
    )  # fmt: skip
    scores: Annotated[dict[str, ScoreSpec], EmptyOk] = Field(
        default_factory=dict, description="name -> a check of each answer: column score_<name>"
    )
    race: RaceSpec | None = Field(
        None, description="race the variants on a score: drop those confidently worse"
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the experiment file (for editors: see docs/experiment-file.md)."""
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


def known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where an unknown key was found, for did-you-mean."""
    parents = [p for p in loc[:-1] if isinstance(p, str)]
    model: type[BaseModel] = ExperimentFile
    if parents[:1] == ["limits"] or parents[-1:] == ["limits"]:
        model = Limits
    elif parents[:1] == ["retry"]:
        model = RetryPolicy
    elif parents[:1] == ["budget"]:
        model = Budget
    elif parents[:1] == ["race"]:
        model = RaceSpec
    elif parents[:1] == ["files"]:
        model = Files
    elif parents[-1:] == ["batch"]:
        model = BatchSpec
    elif "pricing" in parents:
        model = PriceSpec
    elif parents[:1] == ["providers"] and len(parents) >= 2:
        model = ProviderConfig
    elif parents[:1] == ["prompts"]:
        model = Message
        if "content" in parents and len(parents) > 1:
            # Inside a content part: the keys of every part kind.
            keys = {*TextPart.model_fields, *ImageUrlPart.model_fields, *ImageFilePart.model_fields}
            return sorted(keys | set(ImageURL.model_fields))
        if "tool_calls" in parents:
            return sorted({*ToolCall.model_fields, *FunctionCall.model_fields})
    elif parents[:1] == ["params"]:
        model = ParamValues
    elif parents[:1] == ["scores"]:
        nested: dict[str, type[BaseModel]] = {
            "judge": JudgeSpec, "json_path": JsonPathCheck, "close_to": CloseTo,
        }  # fmt: skip
        model = ScoreSpec
        if len(parents) >= 3:
            model = nested.get(parents[2], ScoreSpec)
            if parents[2] == "judge" and "rubric" in parents:
                model = Message
            elif parents[2] == "judge" and "params" in parents:
                model = ParamValues
    return list(model.model_fields)
