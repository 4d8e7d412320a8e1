"""Every error promptgrid raises, in one tree, and every exit code, in one table.

::

    PromptgridError                 base; the CLI turns each into one message and an exit code
    ├── SpecError                   the experiment (file or Experiment(...)) is invalid; exit 2
    ├── UsageError                  a bad argument: unknown run id, unknown format, ...; exit 2
    ├── StoreError                  the SQLite store failed; exit 5 (committed rows are intact)
    │   ├── StoreFull               the disk (or the store's quota) is full
    │   ├── StoreLocked             another connection held the write lock too long
    │   ├── StoreCorrupt            not a promptgrid store, damaged pages, or a newer version
    │   ├── StoreReadOnly           the file or its folder cannot be written
    │   ├── RunOwned                another live process is executing this run (its lease)
    │   └── ExportFailed            some of a run's files could not be written (the others were)
    ├── BudgetExceeded              the next call could pass the run's --max-cost; exit 4
    └── ProviderError               one call failed; becomes an error row unless it stops the run
        ├── RetryableError          worth another attempt (tenacity retries these, and only these)
        │   ├── RateLimited         HTTP 429 rate limit; carries the server's retry_after
        │   ├── ServerError         HTTP 408, 409 and 5xx
        │   ├── RequestTimeout      no answer within limits.timeout_s
        │   ├── ConnectionFailed    refused, reset or dropped connection
        │   └── MalformedResponse   a body that is not a chat completion, or a truncated one
        └── FatalError              never retried
            ├── BadRequest          HTTP 400, 404, 422 and other 4xx: the request itself is wrong
            ├── ResponseTooLarge    an answer past limits.max_response_bytes: cut off as read
            ├── BatchUnanswered     a batch ended without answering this request (retry re-sends)
            │   ├── BatchExpired    its batch expired before the request ran
            │   ├── BatchCancelled  its batch was cancelled before the request ran
            │   ├── BatchFailed     its batch failed validation: nothing in it ran
            │   └── BatchMissing    its batch completed with no line for it
            ├── BatchUnknown        a batch may exist, and the server cannot list its batches
            └── RunStopper          no other cell can succeed: stop the run, keep it resumable
                ├── AuthenticationFailed   HTTP 401 / 403, or no API key
                └── QuotaExceeded          HTTP 429 with code insufficient_quota

Warnings (``warnings.warn``; the CLI prints them as ``warning: ...``) are
:class:`PromptgridWarning`: a model without a price, a var no prompt uses — worth a look, not
a reason to stop.

Provider errors are built at the network boundary (``promptgrid.providers``) with
``raise Ours(...) from exc``; nothing above that layer sees an SDK or transport exception.
Messages never contain an API key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """The exit codes of the ``promptgrid`` command (docs/errors.md's table is this one)."""

    OK = 0  #: every call succeeded
    STOPPED = 1  #: an authentication or quota failure stopped the run (resumable)
    BAD_INPUT = 2  #: bad input: the experiment, an option, a run id; nothing was written
    ERROR_ROWS = 3  #: the run finished, some calls ended as error rows
    BUDGET = 4  #: the budget stopped the run (resumable with a higher cap)
    STORE = 5  #: the store failed: disk full, locked, corrupt, read-only, owned by another run
    PENDING = 6  #: batches are still running at the provider (``batch collect``): collect later
    INCOMPLETE = 7  #: ``merge``: a shard is missing or unfinished; the merged run lacks cells
    SIGHUP = 129  #: interrupted by SIGHUP (a closed terminal); resumable
    SIGINT = 130  #: interrupted by Ctrl-C; resumable
    SIGTERM = 143  #: interrupted by SIGTERM (docker stop, systemd, CI); resumable


class PromptgridWarning(UserWarning):
    """Something worth a look that does not stop a run (an unpriced model, an unused var).
    A warning, not an error: it changes no exit code."""


class PromptgridError(Exception):
    """Base class of every error promptgrid raises on purpose. The command exits with its
    class's ``exit_code``: exit code 1 unless the class sets another."""

    exit_code: int = ExitCode.STOPPED


# --------------------------------------------------------------------------- input errors


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an experiment: what, where, and what to do about it."""

    message: str
    file: str | None = None
    line: int | None = None
    path: str = ""
    hint: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        if self.path:
            where = f"{where} {self.path}" if where else self.path
        text = f"{where}: {self.message}" if where else self.message
        return f"{text}\n  -> {self.hint}" if self.hint else text


class SpecError(PromptgridError):
    """The experiment is invalid; raised before anything runs or is written.

    ``problems`` lists every problem found (validation does not stop at the first one);
    each names the file, the line and the key path, and says what to do. Exit code 2.
    """

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems:"]
        lines += [f"- {p}".replace("\n", "\n  ") for p in self.problems]
        return "\n".join(lines)


class UsageError(PromptgridError):
    """A bad argument to the CLI or the Python API (unknown run id, unknown export format,
    ...). Exit code 2."""

    exit_code = ExitCode.BAD_INPUT


class StoreError(PromptgridError):
    """The SQLite store failed. The message says what failed, which file, and what to do;
    everything committed before is intact, and the run can be resumed once it is fixed.
    Exit code 5, as for each of its subclasses."""

    exit_code = ExitCode.STORE


class StoreFull(StoreError):
    """The disk holding the store (or an export) is full. Exit code 5."""


class StoreLocked(StoreError):
    """Another connection held the store's write lock past the busy timeout. Exit code 5."""


class StoreCorrupt(StoreError):
    """The file is not a promptgrid store, has damaged pages, or was written by a newer
    promptgrid. Exit code 5."""


class StoreReadOnly(StoreError):
    """The store (or its folder) cannot be written. Exit code 5."""


class RunOwned(StoreError):
    """Another live process holds this run's lease: it is being executed right now. Exit
    code 5."""


class ExportFailed(StoreError):
    """Some formats of a run's files could not be written; every other format was.

    Raised after the others are written. ``written`` lists the files written; ``failed`` maps
    each failed format to why (a disk-full or read-only folder says so) and the message ends
    with the command that writes them again. Exit code 5.
    """

    def __init__(self, message: str, *, written: list[Path], failed: dict[str, str]) -> None:
        super().__init__(message)
        self.written = written
        self.failed = failed


class BudgetExceeded(PromptgridError):
    """The run's budget is spent: the next call's worst case would pass the cap. The run stops
    (status ``stopped``), the cells left stay pending; a resume with a higher cap finishes it.
    Exit code 4."""

    exit_code = ExitCode.BUDGET

    def __init__(self, message: str, *, cap: float, spent: float, next_worst: float) -> None:
        super().__init__(message)
        self.cap = cap
        self.spent = spent
        self.next_worst = next_worst


# --------------------------------------------------------------------------- call errors


@dataclass
class ProviderError(PromptgridError):
    """One call to a provider failed. ``code`` is the ``error_type`` column of its row.

    Exit code: a failed call becomes its cell's error row (after the retries, for a
    :class:`RetryableError`) and the run finishes with exit code 3; a :class:`RunStopper`, or
    any of these failing a batch's remote step (upload, creation, download), stops the run:
    exit code 1, resumable."""

    message: str
    http_status: int | None = None
    retry_after: float | None = None
    request_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    code = "provider_error"
    retryable = False
    stops_run = False

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class RetryableError(ProviderError):
    """A failure that another attempt may cure. Exit code 3 (an error row, once the retries
    are spent)."""

    code = "retryable"
    retryable = True


class RateLimited(RetryableError):
    """HTTP 429 rate limit (not quota). ``retry_after`` is the server's wait, if it sent one.
    Exit code 3 (an error row, once the retries are spent)."""

    code = "rate_limited"


class ServerError(RetryableError):
    """HTTP 408, 409 or 5xx: the server failed, not the request. Exit code 3 (an error row,
    once the retries are spent)."""

    code = "server_error"


class RequestTimeout(RetryableError):
    """No complete answer within ``limits.timeout_s``. Exit code 3 (an error row, once the
    retries are spent)."""

    code = "timeout"


class ConnectionFailed(RetryableError):
    """The connection was refused, reset or dropped before a full response arrived. Exit
    code 3 (an error row, once the retries are spent)."""

    code = "connection_error"


class MalformedResponse(RetryableError):
    """The server answered 2xx with a body that is not a complete chat completion. Exit code 3
    (an error row, once the retries are spent)."""

    code = "malformed_response"


class FatalError(ProviderError):
    """A failure that retrying cannot cure. Exit code 3 (an error row), unless it stops the
    run (:class:`RunStopper`, :class:`BatchUnknown`: exit code 1)."""

    code = "fatal"


class BadRequest(FatalError):
    """HTTP 400, 404, 422 or another 4xx: the request is wrong (bad model, bad parameter,
    ...). Exit code 3 (an error row)."""

    code = "bad_request"


class ResponseTooLarge(FatalError):
    """An answer body (counted after decompression) or a stream longer than
    ``limits.max_response_bytes``: it was cut off while it was read, so memory stays bounded
    whatever a server sends.

    Not retried: the same request would most likely bring the same answer again, to be read
    (and perhaps paid for) again; raising the limit or lowering ``max_tokens`` is the cure.
    Exit code 3 (an error row)."""

    code = "response_too_large"


class BatchUnanswered(FatalError):
    """A batch ended (expired, cancelled, failed) without answering this request: it never
    ran and cost nothing. Its cell becomes an error row that ``retry`` sends again. Exit
    code 3."""

    code = "batch_unanswered"


class BatchExpired(BatchUnanswered):
    """The batch's completion window ended before this request ran. Exit code 3 (an error
    row)."""

    code = "batch_expired"


class BatchCancelled(BatchUnanswered):
    """The batch was cancelled before this request ran. Exit code 3 (an error row)."""

    code = "batch_cancelled"


class BatchFailed(BatchUnanswered):
    """The batch failed validation (its file was refused): none of its requests ran. Exit
    code 3 (an error row)."""

    code = "batch_failed"


class BatchMissing(BatchUnanswered):
    """The batch completed, but neither its output nor its error file has this request. Exit
    code 3 (an error row)."""

    code = "batch_missing"


class BatchUnknown(FatalError):
    """A batch creation was interrupted and the server cannot list its batches: whether the
    batch exists is unknown, and creating another could pay for its requests twice. The run
    stops; the message says how to find out and the ways on. Exit code 1."""

    code = "batch_unknown"


class RunStopper(FatalError):
    """No other call can succeed either; the run stops at once and stays resumable. Exit
    code 1."""

    code = "run_stopped"
    stops_run = True


class AuthenticationFailed(RunStopper):
    """HTTP 401/403, or no API key configured. Exit code 1 (the run stops, resumable)."""

    code = "authentication"


class QuotaExceeded(RunStopper):
    """HTTP 429 with ``insufficient_quota``: the account is out of credit. Exit code 1 (the
    run stops, resumable)."""

    code = "insufficient_quota"


__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "BatchCancelled",
    "BatchExpired",
    "BatchFailed",
    "BatchMissing",
    "BatchUnanswered",
    "BatchUnknown",
    "BudgetExceeded",
    "ConnectionFailed",
    "ExitCode",
    "ExportFailed",
    "FatalError",
    "MalformedResponse",
    "Problem",
    "PromptgridError",
    "PromptgridWarning",
    "ProviderError",
    "QuotaExceeded",
    "RateLimited",
    "RequestTimeout",
    "ResponseTooLarge",
    "RetryableError",
    "RunOwned",
    "RunStopper",
    "ServerError",
    "SpecError",
    "StoreCorrupt",
    "StoreError",
    "StoreFull",
    "StoreLocked",
    "StoreReadOnly",
    "UsageError",
]
