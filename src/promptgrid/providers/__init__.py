"""Providers: the only network boundary. ``open_provider`` builds one from its configuration."""

from __future__ import annotations

import os

from ..errors import AuthenticationFailed
from ..spec import ProviderConfig
from .base import Completion, Provider, Request

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def resolve_endpoint(base_url: str | None) -> str:
    """The effective base URL: ``base_url``, else ``OPENAI_BASE_URL``, else OpenAI's; no
    trailing slash."""
    url = (base_url or "").strip() or os.environ.get("OPENAI_BASE_URL", "").strip()
    return (url or DEFAULT_BASE_URL).rstrip("/")


def endpoint_id(config: ProviderConfig, base_url: str | None = None) -> str:
    """The endpoint a provider sends to; part of every request's hash (never the key)."""
    if config.type == "echo":
        return "echo"
    return resolve_endpoint(base_url or config.base_url)


def open_provider(
    config: ProviderConfig, *, timeout_s: float, base_url: str | None = None
) -> Provider:
    """Create the provider for one endpoint (inside the event loop that will use it)."""
    if config.type == "echo":
        from .echo import EchoProvider

        return EchoProvider()
    url = endpoint_id(config, base_url)
    key_env = config.api_key_env or "OPENAI_API_KEY"
    key = os.environ.get(key_env)
    if not key:
        if config.api_key_env is not None or url == DEFAULT_BASE_URL:
            raise AuthenticationFailed(
                f"no API key: set {key_env} in the environment for {url}, "
                "or run offline with --provider echo"
            )
        key = "not-needed"  # local OpenAI-compatible servers (Ollama, vLLM) usually take none
    from .openai import OpenAIProvider

    return OpenAIProvider(base_url=url, api_key=key, timeout_s=timeout_s)


__all__ = [
    "DEFAULT_BASE_URL", "Completion", "Provider", "Request", "endpoint_id", "open_provider",
    "resolve_endpoint",
]  # fmt: skip
