"""What the store reads and writes, as values: a run, an answer and its choices, a finished
cell's row, a score; and the JSON and time formats of its columns."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


#: One encoder for every JSON column (``json.dumps`` with options builds one a call).
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def dumps(value: Any) -> str:
    """Compact JSON, the way every JSON column is written."""
    return _ENCODE(value)


@dataclass(frozen=True)
class RunInfo:
    """One row of ``runs``."""

    run_id: str
    experiment: str
    source: str | None
    spec: dict[str, Any]
    columns: list[tuple[str, str]]
    options: dict[str, Any]
    total: int
    status: str  #: running, finished, interrupted, stopped, failed, submitted, incomplete
    created_at: str
    finished_at: str | None
    owner: str | None = None  #: the live process executing it (pid@host), if any
    #: The score columns of its table (``table.with_score_columns`` fills them in).
    score_columns: tuple[tuple[str, str], ...] = ()


# StoredChoice and Answer are built for every answer: plain slotted dataclasses (a frozen one
# costs four times as much to build). Treat them as values.
@dataclass(slots=True)
class StoredChoice:
    """One choice of an answer, as stored (JSON columns as JSON text)."""

    response: str | None
    finish_reason: str | None
    tool_calls: str | None = None
    parsed: str | None = None
    parse_error: str | None = None
    refusal: str | None = None
    logprobs: str | None = None


@dataclass(slots=True)
class Answer:
    """A successful response, as stored. Its first choice's fields are its own; ``choices``
    holds every choice when there are several."""

    response: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    resolved_model: str | None
    request_id: str | None
    latency_s: float | None
    cost_usd: float | None
    rate_limits: dict[str, str]
    tool_calls: str | None = None  #: JSON text
    parsed: str | None = None  #: JSON text
    parse_error: str | None = None
    refusal: str | None = None
    logprobs: str | None = None  #: JSON text
    reasoning_summary: str | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    choices: tuple[StoredChoice, ...] = ()


@dataclass(frozen=True)
class ResultRow:
    """What the scheduler hands the store for one finished cell."""

    run_id: str
    idx: int
    cell_id: str
    prompt: str
    vars: dict[str, Any]
    params: dict[str, Any]
    repeat: int
    request: dict[str, Any]
    status: str  # "ok" | "error"
    attempts: Sequence[dict[str, Any]]  # status, error_type, http_status, error, latency_s
    answer: Answer | None = None  # a new answer to store (status ok, not cached)
    response_id: int | None = None  # an existing answer (cached)
    error_type: str | None = None
    http_status: int | None = None
    error: str | None = None
    latency_s: float | None = None
    cost_usd: float | None = None
    cached: bool = False
    score: str | None = None  # a judge's call for this score of cell ``idx``, not a graded row
    batch_id: str | None = None  # the batch that answered it (batch mode)


@dataclass(frozen=True)
class ScoreRecord:
    """One stored score of one cell (see ``promptgrid.scoring``)."""

    idx: int
    scorer: str  # the declared score
    name: str  # its column, less ``score_``: the scorer's name, or ``name.key``
    kind: str  # bool, int or float
    value: float | None
    error: str | None = None
    reason: str | None = None
    judge_cell_id: str | None = None
