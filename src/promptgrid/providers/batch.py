"""The Batch API driver: request files and batches through the openai SDK's ``files`` and
``batches`` resources, and a batch's output lines read back as completions.

:class:`BatchClient` makes one remote step per call — upload a file, create a batch, look one
up, poll, cancel, download, delete — and keeps no state: what was done is recorded by the
caller (:mod:`promptgrid.engine.batch.driver`) before and after each step. Two lookups make a step
that may or may not have happened safe to repeat: :meth:`BatchClient.find_file` (by its unique file
name) and :meth:`BatchClient.find_batch` (by its metadata). The SDK's own retries are off: a
``POST /batches`` retried after a lost answer would create a second batch; the caller retries,
looking up first.

:func:`read_line` turns one line of an output or error file into ``(custom_id, Completion)`` or
``(custom_id, ProviderError)`` with the same normalisers the online path uses
(:mod:`.chat`, :mod:`.responses`), so a batch answer lands in the store exactly as the same
answer online would. Every failure leaves this module as a :mod:`promptgrid.errors` class, and
everything a server sends back is scrubbed of the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import httpx2
import openai
from openai.types import Batch
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from pydantic import BaseModel

from .. import untrusted
from ..credentials import secrets_of
from ..errors import (
    BadRequest,
    BatchCancelled,
    BatchExpired,
    MalformedResponse,
    ProviderError,
)
from ..spec.schema import DEFAULT_MAX_RESPONSE_BYTES
from .base import Completion
from .bounded import BoundedResponses
from .chat import completion as chat_completion
from .responses import completion as responses_completion
from .translate import (
    GARBLED,
    Secrets,
    scrub_completion,
    scrub_error,
    status_error,
    translate,
)

__all__ = ["BatchClient", "RemoteBatch", "read_line"]

#: How far back (seconds) before a step's write-ahead a lookup still searches: the provider's
#: clock may differ from ours.
LOOKUP_SLACK_S = 3600.0
#: Errors of a batch line that mean its request never ran.
_NOT_RUN: Mapping[str, type[ProviderError]] = {
    "batch_expired": BatchExpired,
    "batch_cancelled": BatchCancelled,
}
_CUSTOM_ID = re.compile(rb'"custom_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class RemoteBatch:
    """A batch as the provider describes it."""

    id: str
    status: str
    input_file_id: str | None
    output_file_id: str | None
    error_file_id: str | None
    completed: int | None
    failed: int | None
    total: int | None
    created_at: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)  #: a failed validation's


def _remote(batch: Batch) -> RemoteBatch:
    counts = batch.request_counts
    errors = batch.errors.data if batch.errors is not None and batch.errors.data else []
    return RemoteBatch(
        id=batch.id,
        status=str(batch.status).lower(),  # some compatible servers write them in capitals
        input_file_id=batch.input_file_id,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        completed=counts.completed if counts is not None else None,
        failed=counts.failed if counts is not None else None,
        total=counts.total if counts is not None else None,
        created_at=int(batch.created_at or 0),
        metadata=dict(batch.metadata or {}),
        # A failed validation's messages end up in error rows: stored, so valid UTF-8.
        errors=[untrusted.json_value(e.model_dump(mode="json", exclude_none=True)) for e in errors],
    )


class BatchClient:
    """Files and batches of one endpoint (``base_url``, ``api_key``; ``azure_api_version``
    makes it an Azure client). Create it inside the running loop; close it with
    :meth:`aclose`. Each method raises only :mod:`promptgrid.errors` classes. No answer is read
    past ``max_response_bytes`` (a file's content, streamed to disk, excepted)."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout_s: float = 600.0,
        azure_api_version: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._key: Secrets = secrets_of(api_key, base_url)  # scrubbed from what comes back
        # Answers about files and batches are small; a file's content is streamed to disk.
        bounded = BoundedResponses(max_response_bytes, exempt=_file_content)
        if http_client is None:
            http_client = openai.DefaultAsyncHttpxClient(event_hooks={"response": [bounded]})
        else:
            hooks = http_client.event_hooks
            http_client.event_hooks = {**hooks, "response": [*hooks["response"], bounded]}
        common: dict[str, Any] = {
            "api_key": api_key,
            "max_retries": 0,  # a retried create could make a second batch: the caller retries
            "timeout": timeout_s,
            "http_client": http_client,
        }
        self._client: openai.AsyncOpenAI
        if azure_api_version is not None:
            self._client = openai.AsyncAzureOpenAI(
                azure_endpoint=base_url.rstrip("/"), api_version=azure_api_version, **common
            )
        else:
            self._client = openai.AsyncOpenAI(base_url=base_url.rstrip("/"), **common)

    async def upload(self, path: Path, filename: str) -> str:
        """Upload a request file (``purpose=batch``) under ``filename``; its file id. The file
        is streamed from disk, never read whole."""
        try:
            with path.open("rb") as file:
                made = await self._client.files.create(
                    file=(filename, file, "application/jsonl"), purpose="batch"
                )
            return str(made.id)
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc

    async def find_file(self, filename: str, since: float) -> str | None:
        """The id of a batch file named ``filename`` uploaded after ``since`` (``time.time()``,
        less :data:`LOOKUP_SLACK_S`), newest first; None if there is none."""
        try:
            pages = self._client.files.list(purpose="batch", order="desc", limit=1000)
            async for file in pages:
                if file.filename == filename:
                    return str(file.id)
                if file.created_at and file.created_at < since - LOOKUP_SLACK_S:
                    return None
            return None
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc

    async def create(self, file_id: str, url: str, metadata: Mapping[str, str]) -> RemoteBatch:
        """Create a batch of the requests in ``file_id`` (completion window 24 h)."""
        endpoint = cast(Literal["/v1/chat/completions"], url)  # the SDK lists OpenAI's paths
        try:
            made = await self._client.batches.create(
                input_file_id=file_id,
                endpoint=endpoint,
                completion_window="24h",
                metadata=dict(metadata),
            )
            return _remote(made)
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc

    async def find_batch(self, metadata: Mapping[str, str], since: float) -> RemoteBatch | None:
        """The batch carrying ``metadata`` created after ``since`` (``time.time()``, less
        :data:`LOOKUP_SLACK_S`), newest first; None if there is none."""
        try:
            async for batch in self._client.batches.list(limit=100):
                found = batch.metadata or {}
                if all(found.get(k) == v for k, v in metadata.items()):
                    return _remote(batch)
                if batch.created_at and batch.created_at < since - LOOKUP_SLACK_S:
                    return None
            return None
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc

    async def retrieve(self, batch_id: str) -> RemoteBatch:
        """The batch as it is now."""
        try:
            return _remote(await self._client.batches.retrieve(batch_id))
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc

    async def cancel(self, batch_id: str) -> RemoteBatch:
        """Ask the provider to cancel a batch (it goes ``cancelling``, then ``cancelled``)."""
        try:
            return _remote(await self._client.batches.cancel(batch_id))
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc

    async def download(self, file_id: str, path: Path) -> None:
        """Stream a file's content to ``path``."""
        try:
            async with self._client.files.with_streaming_response.content(file_id) as response:
                with path.open("wb") as out:
                    async for chunk in response.iter_bytes():
                        out.write(chunk)
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc

    async def delete(self, file_id: str) -> None:
        """Delete a file."""
        try:
            await self._client.files.delete(file_id)
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    def _error(self, exc: openai.OpenAIError) -> ProviderError:
        return scrub_error(translate(exc), self._key)


def _file_content(request: httpx2.Request) -> bool:
    """A file's content (``GET /files/{id}/content``): streamed to disk, as large as it is."""
    return request.url.path.endswith("/content")


def custom_id_of(line: bytes) -> str | None:
    """A line's ``custom_id`` found without parsing the whole line (an output line's body
    cannot hold the key unescaped); None if it has none."""
    match = _CUSTOM_ID.search(line)
    if match is None:
        return None
    raw = match.group(1)
    try:
        text: str = json.loads(b'"' + raw + b'"') if b"\\" in raw else raw.decode()
    except ValueError:  # not UTF-8, a broken escape: no cell has this id
        return None
    return text


def read_line(line: bytes, api: str, key: Secrets = "") -> tuple[str, Completion | ProviderError]:
    """One line of a batch's output or error file: its ``custom_id`` and the completion, or
    the error that stands for it (an HTTP error status, a request that never ran: expired or
    cancelled, an answer that is not a complete one). ``ValueError`` if the line is not a
    batch line at all (no ``custom_id``)."""
    what = "response" if api == "responses" else "chat completion"
    fast = _answered(line, api)
    if fast is not None:
        try:
            return fast[0], scrub_completion(fast[1], key)
        except (ProviderError, *GARBLED) as exc:
            return fast[0], _garbled(exc, what, key)
    try:
        data = untrusted.loads(line)
    except RecursionError as exc:  # nested too deep to read: still the answer of its custom_id
        found = custom_id_of(line)
        if found is None:
            raise ValueError("not a batch output line: no custom_id") from None
        return found, _garbled(exc, what, key)
    if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
        raise ValueError("not a batch output line: no custom_id")
    custom_id: str = data["custom_id"]
    try:
        outcome = _outcome(data, api)
        if isinstance(outcome, ProviderError):
            return custom_id, scrub_error(outcome, key)
        return custom_id, scrub_completion(outcome, key)
    except (ProviderError, *GARBLED) as exc:
        return custom_id, _garbled(exc, what, key)


def _garbled(exc: BaseException, what: str, key: Secrets) -> ProviderError:
    """The error that stands for a line's answer: its own, or a MalformedResponse."""
    if not isinstance(exc, ProviderError):
        exc = MalformedResponse(f"not a {what}: {type(exc).__name__}: {exc}")
    return scrub_error(exc, key)


class _Answered(BaseModel):
    status_code: Literal[200]
    request_id: str | None = None


class _ChatAnswered(_Answered):
    body: ChatCompletion


class _ResponsesAnswered(_Answered):
    body: Response


class _ChatLine(BaseModel):
    custom_id: str
    response: _ChatAnswered
    error: None = None


class _ResponsesLine(BaseModel):
    custom_id: str
    response: _ResponsesAnswered
    error: None = None


def _answered(line: bytes, api: str) -> tuple[str, Completion] | None:
    """The common line — a 200 with a body of the SDK's shape — parsed and validated in one
    pass (pydantic's JSON parser: about 2.5x a ``json.loads`` then a validation); None for any
    other line, which the general path reads."""
    try:
        if api == "responses":
            parsed: Any = _ResponsesLine.model_validate_json(line)
            normalise = responses_completion
        else:
            parsed = _ChatLine.model_validate_json(line)
            normalise = chat_completion
    except ValueError:
        return None
    response = parsed.response
    headers = {"x-request-id": response.request_id} if response.request_id else {}
    try:
        return parsed.custom_id, normalise(response.body, headers)
    except (ProviderError, *GARBLED):
        return None  # the general path says what is wrong with it


def _outcome(data: Mapping[str, Any], api: str) -> Completion | ProviderError:
    response = data.get("response")
    error = data.get("error")
    if isinstance(response, Mapping) and response.get("status_code") is not None:
        status = int(response["status_code"])
        request_id = response.get("request_id")
        body = response.get("body")
        if status >= 400 or not isinstance(body, Mapping):
            detail = body.get("error") if isinstance(body, Mapping) else None
            message = str(detail.get("message") if isinstance(detail, Mapping) else body)
            return status_error(status, detail, {}, message, request_id)
        headers = {"x-request-id": request_id} if request_id else {}
        if api == "responses":
            return responses_completion(_parse(Response, body), headers)
        return chat_completion(_parse(ChatCompletion, body), headers)
    if isinstance(error, Mapping):
        code = str(error.get("code") or "")
        message = str(error.get("message") or "the request failed in the batch")
        kind = _NOT_RUN.get(code)
        if kind is not None:
            return kind(f"{code}: {message}")
        return BadRequest(f"{code}: {message}" if code else message)
    raise ValueError("a batch line with neither a response nor an error")


def _parse(model: type[ChatCompletion] | type[Response], body: Mapping[str, Any]) -> Any:
    """The SDK's object for ``body``: validated (fast), or built the SDK's lenient way (as
    the online call does) for a compatible server's body that strays from OpenAI's shape:
    the SDK's models override pydantic's ``model_construct`` to build nested models too."""
    try:
        return model.model_validate(body)
    except ValueError:
        return model.model_construct(**body)
