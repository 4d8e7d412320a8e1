"""The SQLite store: every run, request, answer and attempt, committed as it arrives.

Content-addressed, like simonw/llm's logs: a request is keyed by its ``cell_id`` (the hash of
its canonical JSON, see ``grid``), so an identical request in another run or another
experiment finds its answer here (the cache). Tables:

- ``runs``       one row per run: the experiment as validated, its status and size.
- ``requests``   one row per distinct request (``cell_id``): what was sent.
- ``responses``  successful answers only — errors are never cached as answers. One row per
                 request: its usage, timing, reasoning summary, and its first choice.
- ``choices``    every choice of an answer that has several (``n > 1``), the first included;
                 an answer with one choice has none here.
- ``results``    one row per run × cell index: the result table, pointing at a response or
                 holding the error of the cell's last attempt.
- ``attempts``   every attempt of every cell, for the record.
- ``owners``     each process executing a run here: pid, host, heartbeat.
- ``claims``     requests on the wire, and whose: another process waits for the answer
                 instead of paying for it too.
- ``judge_calls`` a judge's call for one score of one cell (like ``results``, kept apart so
                 judge calls never mix with the graded rows); keyed by the judge request too,
                 so a verdict made once under a rubric is kept when the rubric changes.
- ``scores``     one row per run × cell × score column: its value, or why there is none, and
                 the digest of the definition that made it (another definition: stale).
- ``races``, ``race_rounds``, ``race_eliminations``  a raced run's settings, rounds and
                 eliminations (:mod:`.races`).
- ``shards``     a merged run's shards: which run each came from, and what it had then.

WAL mode with ``synchronous=NORMAL``: a commit survives the process being killed at any moment
(it may not survive a power cut, which costs at most the last few calls). Schema changes are
named migrations in ``migrations``, applied under an exclusive lock and re-checked once it is
held, so two processes opening a new store at once cannot both apply one.

**Leases.** A run being executed names its owner (``runs.owner``); the owner's heartbeat is
renewed every ``HEARTBEAT_S``. An owner is alive while its heartbeat is younger than
``LEASE_TTL_S`` and, on this host, its pid exists — so a run killed with ``-9`` shows as
``interrupted`` at once, and a second process refuses to execute a run whose owner is alive.

**Errors.** Every ``sqlite3`` or file-system failure leaves this package as a
:class:`~promptgrid.errors.StoreError` saying what failed, which file, and what to do.

The package: :mod:`.core` (the :class:`Store`: opening, migrating, runs, results, claims),
:mod:`.schema` (migrations and the result table's query), :mod:`.records` (the values it reads
and writes), :mod:`.owners` (who executes a run), :mod:`.leases` (a run's lease),
:mod:`.scores` (scores and judge calls), :mod:`.batch` (batch mode's chunks), :mod:`.failures`
(error translation), :mod:`.races` (a race's record), :mod:`.merge` (shards' stores
joined into one run). Leases, scores, batches and races are
functions over a :class:`Store`.
"""

from __future__ import annotations

from .core import STORE_NAME, Store
from .failures import translate
from .owners import HEARTBEAT_S, Owner, pid_alive
from .records import Answer, ResultRow, RunInfo, ScoreRecord, StoredChoice, dumps, now
from .schema import MIGRATIONS

__all__ = [
    "HEARTBEAT_S", "MIGRATIONS", "STORE_NAME", "Answer", "Owner", "ResultRow", "RunInfo",
    "ScoreRecord", "Store", "StoredChoice", "dumps", "now", "pid_alive", "translate",
]  # fmt: skip
