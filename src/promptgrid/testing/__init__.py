"""A local OpenAI-compatible *fault server* for tests and benchmarks.

:class:`FaultServer` answers ``POST /v1/chat/completions`` and ``POST /v1/responses`` (also at
Azure OpenAI's paths) over a real loopback socket the way OpenAI does, whole or streamed as
Server-Sent Events, so the real ``openai`` SDK (and promptgrid on top of it) can be driven end
to end:

* answers are deterministic and name their request: ``"echo: " + <last user message>``, and
  ``"echo [i]: ..."`` for choice ``i > 0`` of ``n``; ``usage`` comes from promptgrid's own
  estimator (:func:`promptgrid.tokens.estimate_prompt_tokens` for the prompt,
  :func:`promptgrid.tokens.estimate_text_tokens` of each choice's answer, plus reasoning tokens);
* every kind of answer (:mod:`.made`): tool calls, structured outputs fitting the requested JSON
  schema, refusals, logprobs, reasoning tokens and summaries, in the shapes of either API
  (:mod:`.shapes`);
* ``answers``: a text given for requests whose last user message contains a substring
  replaces the echo (a judge's verdict, say);
* per-API-key request (``rpm``) and token (``tpm``) buckets that start full and refill continuously
  at ``limit / 60`` per second, charging ``prompt + max_tokens * n`` tokens up front; a request
  the buckets cannot cover gets OpenAI's 429 (``retry-after``, ``retry-after-ms``) and consumes
  nothing. Every response carries the ``x-ratelimit-*`` headers of the configured limits;
* faults, scripted (:meth:`FaultServer.script`, :meth:`FaultServer.script_for`) or drawn at
  seeded rates (``fault_rates``): an HTTP status (``"503"``, ``"429"``, ...) or a name in
  :data:`FAULTS` — ``"quota"``, ``"retry_after_bad"`` (a 429 whose ``retry-after`` is unusable),
  ``"drop"`` (connection closed), ``"stall"``, ``"truncated"``, and 200s a client must refuse:
  ``"malformed"`` (JSON cut short), ``"bad_utf8"``, ``"garbage"`` (JSON of the wrong shape),
  ``"empty"`` and ``"deep_body"`` (JSON nested 2,000 deep); ``"error_surrogate"`` (a 400 whose
  message holds a lone surrogate); for streams ``"stream_cut"`` (the connection closed after the
  first output); answers too large to hold (:mod:`.floods`): ``"huge"`` (a text of
  ``huge_bytes``), ``"gzip_bomb"`` (the same, gzip-compressed: ~1 KB on the wire per MiB) and
  ``"endless"``; and answer kinds ``"tool_call"``, ``"bad_json"``, ``"refusal"``, and the
  hostile ``"surrogates"`` (lone and split UTF-16 surrogates in the text and tool-call ids) and
  ``"bad_usage"`` (every usage number is the ``bad_usage`` setting). Injected faults and answer
  kinds replace normal processing: they neither check nor charge buckets;
* ``echo_key=True`` plants the caller's key in every response, to prove a client never keeps it;
  ``usage={...}`` sends the given usage fields in every answer (a server that misreports);
* the Files and Batch APIs (``/v1/files``, ``/v1/batches``: :mod:`.batch`), whose batches
  move only as a test says (:attr:`FaultServer.batches`: ``progress``, ``complete``,
  ``expire``, ``fail``; a client's cancel; ``batch_complete_after`` polls), each request of a
  batch answered by the same code as an online one (``script_for`` faults give error lines),
  with scripted failures of the calls themselves (``script(["503"], op="retrieve")``) and a
  hook on each call for kill -9 tests;
* counters for assertions (:meth:`FaultServer.stats`, ``FaultServer.batches.stats()``), also
  served, with control endpoints, over HTTP (``GET /_pg/stats``, ``POST /_pg/script``,
  ``POST /_pg/config``, ``POST /_pg/reset``, ``POST /_pg/batches`` with ``{"do": ...}``).

``FaultServer`` runs on its own thread and event loop, so ``with FaultServer() as s:`` works in sync
and async tests alike. For benchmarks, :func:`spawn_fault_server` runs ``python -m
promptgrid.testing`` in a child process and steers it through a :class:`RemoteFaultServer`.

Modules: :mod:`.buckets` (rate limits and their headers), :mod:`.answers` (requests, error bodies
and the fault catalogue), :mod:`.made` (the answer a request gets), :mod:`.shapes` (its JSON and
stream shapes), :mod:`.floods` (answers too large to hold), :mod:`.batch` (files and
batches), :mod:`.settings`, :mod:`.core` (state and request handlers), :mod:`.server`
(in-process), :mod:`.spawn` (child process), :mod:`.__main__` (command line). The package needs
aiohttp, the standard library and promptgrid's pure modules (:mod:`promptgrid.tokens`,
:mod:`promptgrid.synthetic`, :mod:`promptgrid.apis`) only.
"""

from __future__ import annotations

from .answers import FAULTS
from .batch import BatchControls
from .buckets import go_duration
from .server import FaultServer
from .spawn import RemoteFaultServer, spawn_fault_server

__all__ = [  # noqa: RUF022 (sorted as sorted() sorts: a test checks it)
    "BatchControls", "FAULTS", "FaultServer", "RemoteFaultServer", "go_duration",
    "spawn_fault_server",
]  # fmt: skip
