"""Providers: the only network boundary. ``open_provider`` builds one for a resolved endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..spec.schema import DEFAULT_MAX_RESPONSE_BYTES
from .base import Completion, Provider, Request

if TYPE_CHECKING:
    from ..config import EndpointConfig
    from .batch import BatchClient


def open_provider(endpoint: EndpointConfig) -> Provider:
    """Create the provider for one endpoint (inside the event loop that will use it)."""
    if endpoint.kind == "echo":
        from .echo import EchoProvider

        return EchoProvider()
    from .openai import OpenAIProvider

    assert endpoint.base_url is not None
    return OpenAIProvider(
        base_url=endpoint.base_url,
        # Local OpenAI-compatible servers (Ollama, vLLM) usually take no key, but the SDK
        # insists on one.
        api_key=endpoint.api_key() or "not-needed",
        timeout_s=endpoint.limits.timeout_s or 60.0,
        max_response_bytes=endpoint.limits.max_response_bytes,
        azure_api_version=endpoint.api_version,
    )


def open_batch_client(endpoint: EndpointConfig) -> BatchClient:
    """Create the Batch API client of one endpoint (inside the event loop that will use it)."""
    from .batch import BatchClient

    assert endpoint.base_url is not None
    return BatchClient(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key() or "not-needed",
        azure_api_version=endpoint.api_version,
        max_response_bytes=endpoint.limits.max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES,
    )


__all__ = ["Completion", "Provider", "Request", "open_batch_client", "open_provider"]
