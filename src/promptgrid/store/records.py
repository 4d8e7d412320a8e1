"""What the store reads and writes, as values: a run, an answer and its choices, a finished
cell's row, a score, a race's record; and the JSON and time formats of its columns."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
    #: Its race, if it raced (``store.races.attach`` fills it in, for the views).
    race: RaceRecord | None = None


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


# A race's record (store.races reads and writes it).

#: Stop reasons after which the race is over (the budget's can be resumed with a higher cap).
FINISHED = ("keep", "exhausted")


@dataclass(frozen=True)
class RoundRow:
    """One variant in one round: blocks run by the race so far, blocks scored for it
    (``cases``), its mean, the ``leader`` and the leader's ``lead`` over it on their paired
    blocks with its interval (None for the leader itself), and whether this round dropped it."""

    round: int
    variant: str
    blocks: int
    cases: int
    mean: float | None
    leader: str
    lead: float | None
    lead_low: float | None
    lead_high: float | None
    dropped: bool


@dataclass(frozen=True)
class Drop:
    """A variant dropped: in ``round``, after ``blocks`` blocks (``cases`` scored for it),
    because ``against`` leads it by ``estimate`` over their ``pairs`` paired blocks, with the
    anytime-valid interval ``[low, high]`` (``low > 0``)."""

    variant: str
    round: int
    blocks: int
    cases: int
    mean: float | None
    against: str
    pairs: int
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Place:
    """A variant's standing: ``rank`` (1 = best), ``status`` (``winner``, ``kept``, ``tied``,
    ``running`` or ``dropped``), mean, blocks scored (``cases``), blocks run and calls made."""

    variant: str
    rank: int
    status: str
    mean: float | None
    cases: int
    blocks: int
    calls: int


@dataclass(frozen=True)
class RaceState:
    """Where a race stands: rounds and blocks run, why it stopped (None: not stopped), the
    winner (once stopped) and every variant's :class:`Place`."""

    rounds: int
    blocks: int
    stopped: str | None
    winner: str | None
    standings: tuple[Place, ...]


@dataclass(frozen=True)
class RaceRecord:
    """A run's race as stored (see the module docstring); ``calls`` are the run's result
    rows, ``grid_calls`` the full grid's cells."""

    run_id: str
    settings: Mapping[str, Any]
    variants: tuple[str, ...]
    n_blocks: int
    repeats: int
    low: float
    high: float
    state: RaceState
    rows: tuple[RoundRow, ...]
    drops: tuple[Drop, ...]
    calls: int
    grid_calls: int

    @property
    def score(self) -> str:
        """The score that decides."""
        return str(self.settings["score"])

    @property
    def factor(self) -> str:
        """What competes."""
        return str(self.settings.get("factor", "prompt"))

    @property
    def finished(self) -> bool:
        """The race is over: ``keep`` left, or the blocks ran out."""
        return self.state.stopped in FINISHED

    @property
    def tied(self) -> tuple[str, ...]:
        """The survivors the race could not separate, best mean first."""
        return tuple(p.variant for p in self.state.standings if p.status == "tied")

    @property
    def saved(self) -> int:
        """Calls of the full grid the race did not make."""
        return self.grid_calls - self.calls
