"""Vendor presets: ``providers: {x: {preset: groq}}`` fills in the base URL and the key variable,
and knows what each vendor's OpenAI-compatible endpoint refuses or silently ignores.

Each preset follows the vendor's own documentation of its OpenAI compatibility (``doc``). A
parameter listed in ``rejects`` is a validation error naming the vendor: one the vendor
answers with a 400 would fail every call, and one it silently ignores would make a grid over
its values compare nothing. What a preset does not list is sent as written.

Azure OpenAI needs the resource's URL as ``base_url`` (``https://RESOURCE.openai.azure.com``)
and takes two more keys: ``api_version`` (the classic, deployment-based API: requests go to
``/openai/deployments/<deployment>/...?api-version=...``) — without it, the ``v1`` API at
``<base_url>/openai/v1`` is used — and ``deployments``, a map from the grid's model names to
your deployment names (the ``model`` column keeps the model name; the deployment is sent).

This module is plain data: the experiment's validation reads it, and so does the run's
configuration, which turns a preset into an endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["PRESETS", "Preset", "vendor_problem"]


@dataclass(frozen=True)
class Preset:
    """One vendor's OpenAI-compatible endpoint."""

    vendor: str  #: the vendor's name, as errors say it
    base_url: str | None  #: None: the experiment must give it (Azure: your resource)
    key_env: str | None  #: the environment variable holding the key; None: no key needed
    doc: str  #: the vendor documentation this preset follows
    apis: frozenset[str] = frozenset({"chat"})  #: the APIs the vendor serves
    rejects: Mapping[str, str] = field(default_factory=dict)  #: parameter -> why (see above)
    notes: str = ""  #: known differences worth knowing, not errors
    #: Its Batch API: the documentation of an OpenAI-shaped one (files + batches, reached
    #: through the openai SDK at ``base_url``), or ``no_batch``, why there is none to use.
    batch_doc: str | None = None
    no_batch: str = ""


_NOT_ONE = "n"  # rejected only when it asks for more than one choice

PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "anthropic": Preset(
            "Anthropic",
            "https://api.anthropic.com/v1",
            "ANTHROPIC_API_KEY",
            "https://docs.anthropic.com/en/api/openai-sdk",
            rejects={
                _NOT_ONE: "n must be exactly 1",
                **{
                    p: "ignored by Anthropic's OpenAI compatibility layer"
                    for p in (
                        "logprobs",
                        "top_logprobs",
                        "response_format",
                        "seed",
                        "presence_penalty",
                        "frequency_penalty",
                        "logit_bias",
                        "prediction",
                        "audio",
                        "modalities",
                    )
                },
                "reasoning_effort": "ignored by Anthropic's OpenAI compatibility layer; "
                "send extra_body: {thinking: {type: enabled, budget_tokens: N}}",
            },
            notes="temperature is capped at 1; system and developer messages are joined into "
            "one system prompt; tools' strict is ignored",
            no_batch="Anthropic's Message Batches API is native only, not on its OpenAI-compatible "
            "endpoint",
        ),
        "azure": Preset(
            "Azure OpenAI",
            None,
            "AZURE_OPENAI_API_KEY",
            "https://learn.microsoft.com/en-us/azure/ai-foundry/openai/reference",
            apis=frozenset({"chat", "responses"}),
            notes="base_url is your resource (https://RESOURCE.openai.azure.com); api_version "
            "selects the deployment-based API, deployments maps model names to deployments",
            batch_doc="https://learn.microsoft.com/en-us/azure/ai-foundry/openai/how-to/batch",
        ),
        "gemini": Preset(
            "Google Gemini",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            "GEMINI_API_KEY",
            "https://ai.google.dev/gemini-api/docs/openai",
            notes="reasoning_effort sets the thinking budget; Gemini-only options travel as "
            "extra_body: {google: {...}}",
            batch_doc="https://ai.google.dev/gemini-api/docs/openai#batch",
        ),
        "groq": Preset(
            "Groq",
            "https://api.groq.com/openai/v1",
            "GROQ_API_KEY",
            "https://console.groq.com/docs/openai",
            apis=frozenset({"chat", "responses"}),
            rejects={
                "logprobs": "not supported (Groq answers 400)",
                "top_logprobs": "not supported (Groq answers 400)",
                "logit_bias": "not supported (Groq answers 400)",
                _NOT_ONE: "n must be 1 (Groq answers 400)",
            },
            notes="temperature 0 is sent as 1e-8",
            batch_doc="https://console.groq.com/docs/batch",
        ),
        "lmstudio": Preset(
            "LM Studio",
            "http://localhost:1234/v1",
            None,
            "https://lmstudio.ai/docs/app/api/endpoints/openai",
            apis=frozenset({"chat", "responses"}),
            no_batch="LM Studio is a local server: no Batch API (and no rate limit to escape)",
        ),
        "mistral": Preset(
            "Mistral",
            "https://api.mistral.ai/v1",
            "MISTRAL_API_KEY",
            "https://docs.mistral.ai/api/",
            rejects={
                "seed": "Mistral calls it random_seed: use extra_body: {random_seed: N}",
                "max_completion_tokens": "Mistral takes max_tokens",
                "logprobs": "not part of Mistral's chat completion API",
                "top_logprobs": "not part of Mistral's chat completion API",
                "logit_bias": "not part of Mistral's chat completion API",
            },
            notes="safe_prompt and other Mistral options travel in extra_body",
            no_batch="Mistral's batch jobs (/v1/batch/jobs) are its own API, not OpenAI's files "
            "and batches",
        ),
        "ollama": Preset(
            "Ollama",
            "http://localhost:11434/v1",
            None,
            "https://docs.ollama.com/api/openai-compatibility",
            apis=frozenset({"chat", "responses"}),
            rejects={
                _NOT_ONE: "Ollama answers one choice per request; use repeats:",
                "logit_bias": "not among Ollama's supported fields (ignored)",
            },
            notes="Ollama options such as num_ctx travel in extra_body",
            no_batch="Ollama is a local server: no Batch API (and no rate limit to escape)",
        ),
        "openrouter": Preset(
            "OpenRouter",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            "https://openrouter.ai/docs/api-reference/overview",
            apis=frozenset({"chat", "responses"}),
            notes="parameters a routed model does not support are dropped by OpenRouter",
            no_batch="OpenRouter has no Batch API",
        ),
        "together": Preset(
            "Together AI",
            "https://api.together.xyz/v1",
            "TOGETHER_API_KEY",
            "https://docs.together.ai/docs/openai-api-compatibility",
            no_batch="Together's batches take {custom_id, body} lines, files uploaded with purpose "
            "batch-api and statuses in capitals: not OpenAI's shape",
        ),
        "vllm": Preset(
            "vLLM",
            "http://localhost:8000/v1",
            None,
            "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
            apis=frozenset({"chat", "responses"}),
            notes="sampling options such as top_k travel in extra_body; a key is needed only "
            "when the server was started with --api-key (set api_key_env)",
            no_batch="vLLM's batch mode is the offline run-batch command, not a server API",
        ),
    }
)


def vendor_problem(preset: str, name: str, value: Any) -> tuple[str, str] | None:
    """``(message, hint)`` when vendor ``preset`` refuses or ignores parameter ``name: value``."""
    entry = PRESETS[preset]
    why = entry.rejects.get(name)
    if why is None or (name == _NOT_ONE and value in (None, 1)):
        return None
    return (
        f"{entry.vendor} does not take {name!r}: {why}",
        f"remove it for this provider (see {entry.doc})",
    )
