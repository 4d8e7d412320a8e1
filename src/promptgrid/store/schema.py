"""The store's schema: named migrations, applied in order (see :class:`~.core.Store`), and the
query that reads a run's result table."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "001_initial",
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            experiment TEXT NOT NULL,
            source TEXT,
            spec_json TEXT NOT NULL,
            columns_json TEXT NOT NULL,
            options_json TEXT NOT NULL DEFAULT '{}',
            total INTEGER NOT NULL,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE INDEX runs_experiment ON runs (experiment, run_id);
        CREATE TABLE requests (
            cell_id TEXT PRIMARY KEY,
            request_json TEXT NOT NULL
        );
        CREATE TABLE responses (
            id INTEGER PRIMARY KEY,
            cell_id TEXT NOT NULL,
            response TEXT,
            finish_reason TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cached_tokens INTEGER,
            reasoning_tokens INTEGER,
            resolved_model TEXT,
            request_id TEXT,
            latency_s REAL,
            cost_usd REAL,
            rate_limits_json TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX responses_cell ON responses (cell_id, id);
        CREATE TABLE results (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            idx INTEGER NOT NULL,
            cell_id TEXT NOT NULL,
            prompt TEXT NOT NULL,
            vars_json TEXT NOT NULL,
            params_json TEXT NOT NULL,
            repeat INTEGER NOT NULL,
            status TEXT NOT NULL,
            response_id INTEGER REFERENCES responses (id),
            error_type TEXT,
            http_status INTEGER,
            error TEXT,
            attempts INTEGER NOT NULL,
            latency_s REAL,
            cost_usd REAL,
            cached INTEGER NOT NULL,
            PRIMARY KEY (run_id, idx)
        );
        CREATE TABLE attempts (
            run_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            status TEXT NOT NULL,
            error_type TEXT,
            http_status INTEGER,
            error TEXT,
            latency_s REAL,
            at TEXT NOT NULL
        );
        CREATE INDEX attempts_cell ON attempts (run_id, idx);
        """,
    ),
    (
        "002_leases_claims",
        """
        ALTER TABLE runs ADD COLUMN owner TEXT;
        CREATE TABLE owners (
            owner TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            heartbeat REAL NOT NULL
        );
        CREATE TABLE claims (
            cell_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            claimed_at REAL NOT NULL
        );
        CREATE INDEX claims_owner ON claims (owner);
        """,
    ),
    (
        "003_request_kinds",
        """
        ALTER TABLE responses ADD COLUMN tool_calls_json TEXT;
        ALTER TABLE responses ADD COLUMN refusal TEXT;
        ALTER TABLE responses ADD COLUMN logprobs_json TEXT;
        ALTER TABLE responses ADD COLUMN parsed_json TEXT;
        ALTER TABLE responses ADD COLUMN parse_error TEXT;
        ALTER TABLE responses ADD COLUMN reasoning_summary TEXT;
        ALTER TABLE responses ADD COLUMN ttft_s REAL;
        ALTER TABLE responses ADD COLUMN tokens_per_s REAL;
        CREATE TABLE choices (
            response_id INTEGER NOT NULL REFERENCES responses (id),
            choice INTEGER NOT NULL,
            response TEXT,
            finish_reason TEXT,
            tool_calls_json TEXT,
            refusal TEXT,
            logprobs_json TEXT,
            parsed_json TEXT,
            parse_error TEXT,
            PRIMARY KEY (response_id, choice)
        ) WITHOUT ROWID;
        """,
    ),
    (
        "004_batches",
        """
        CREATE TABLE batch_chunks (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            chunk INTEGER NOT NULL,
            endpoint TEXT NOT NULL,
            url TEXT NOT NULL,
            filename TEXT NOT NULL,
            state TEXT NOT NULL,
            requests INTEGER NOT NULL,
            cells INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            worst_cost REAL,
            file_id TEXT,
            batch_id TEXT,
            batch_status TEXT,
            completed INTEGER,
            failed INTEGER,
            total INTEGER,
            output_file_id TEXT,
            error_file_id TEXT,
            errors_json TEXT,
            planned_at TEXT NOT NULL,
            step_at REAL NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (run_id, chunk)
        );
        CREATE TABLE batch_cells (
            run_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            chunk INTEGER NOT NULL,
            cell_id TEXT NOT NULL,
            PRIMARY KEY (run_id, idx)
        ) WITHOUT ROWID;
        CREATE INDEX batch_cells_chunk ON batch_cells (run_id, chunk);
        ALTER TABLE results ADD COLUMN batch_id TEXT;
        """,
    ),
    (
        "005_scores",
        """
        CREATE TABLE judge_calls (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            idx INTEGER NOT NULL,
            name TEXT NOT NULL,
            cell_id TEXT NOT NULL,
            status TEXT NOT NULL,
            response_id INTEGER REFERENCES responses (id),
            error_type TEXT,
            http_status INTEGER,
            error TEXT,
            attempts INTEGER NOT NULL,
            latency_s REAL,
            cost_usd REAL,
            cached INTEGER NOT NULL,
            PRIMARY KEY (run_id, idx, name, cell_id)
        );
        CREATE TABLE scores (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            idx INTEGER NOT NULL,
            scorer TEXT NOT NULL,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            value REAL,
            error TEXT,
            reason TEXT,
            digest TEXT NOT NULL,
            judge_cell_id TEXT,
            PRIMARY KEY (run_id, idx, name)
        );
        """,
    ),
    (
        "006_races",
        """
        CREATE TABLE races (
            run_id TEXT PRIMARY KEY REFERENCES runs (run_id),
            settings_json TEXT NOT NULL,
            variants_json TEXT NOT NULL,
            n_blocks INTEGER NOT NULL,
            repeats INTEGER NOT NULL,
            low REAL NOT NULL,
            high REAL NOT NULL,
            rounds INTEGER NOT NULL,
            blocks INTEGER NOT NULL,
            stopped TEXT,
            winner TEXT,
            standings_json TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE race_rounds (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            round INTEGER NOT NULL,
            variant TEXT NOT NULL,
            blocks INTEGER NOT NULL,
            cases INTEGER NOT NULL,
            mean REAL,
            leader TEXT NOT NULL,
            lead REAL,
            lead_low REAL,
            lead_high REAL,
            dropped INTEGER NOT NULL,
            PRIMARY KEY (run_id, round, variant)
        );
        CREATE TABLE race_eliminations (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            variant TEXT NOT NULL,
            round INTEGER NOT NULL,
            blocks INTEGER NOT NULL,
            cases INTEGER NOT NULL,
            mean REAL,
            against TEXT NOT NULL,
            pairs INTEGER NOT NULL,
            estimate REAL NOT NULL,
            low REAL NOT NULL,
            high REAL NOT NULL,
            PRIMARY KEY (run_id, variant)
        );
        """,
    ),
    (
        # A merged run's shards (``promptgrid merge``): one row per shard it holds, with the
        # run it came from and what that run had when it was copied. A shard's own run records
        # its shard in its configuration (``options_json``: ``shard``), a merged run its grid
        # (``merged``); see ``promptgrid.shards``.
        "007_shards",
        """
        CREATE TABLE shards (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            shard INTEGER NOT NULL,
            count INTEGER NOT NULL,
            source TEXT NOT NULL,
            source_run TEXT NOT NULL,
            status TEXT NOT NULL,
            cells INTEGER NOT NULL,
            done INTEGER NOT NULL,
            ok INTEGER NOT NULL,
            merged_at TEXT NOT NULL,
            PRIMARY KEY (run_id, shard)
        );
        """,
    ),
)
#: The columns of one choice, as ``responses`` (its first choice) and ``choices`` name them,
#: with their names in the result table.
CHOICE_COLUMNS = (
    ("response", "response"), ("finish_reason", "finish_reason"),
    ("tool_calls_json", "tool_calls"), ("parsed_json", "parsed"), ("parse_error", "parse_error"),
    ("refusal", "refusal"), ("logprobs_json", "token_logprobs"),
)  # fmt: skip


def results_sql(several: bool = True) -> str:
    """The result table's query: one row per cell, or per choice of an answer that has several
    (``choices`` joined), in cell then choice order; usage and cost on the first choice only.
    A run none of whose answers has several choices reads without the join (``several``
    False): the same columns, fewer steps per row."""
    if not several:
        per_choice = ", ".join(f"a.{stored} AS {name}" for stored, name in CHOICE_COLUMNS)
        return (
            "SELECT r.run_id, r.idx, r.cell_id, r.prompt, r.vars_json, r.params_json, r.repeat, "
            "0 AS choice, json_extract(q.request_json, '$.messages') AS messages, "
            f"{per_choice}, a.reasoning_summary, r.status, r.error_type, r.http_status, r.error, "
            "r.attempts, a.prompt_tokens, a.completion_tokens, a.cached_tokens, "
            "a.reasoning_tokens, r.cost_usd, r.latency_s, a.ttft_s, a.tokens_per_s, "
            "a.resolved_model, a.request_id, r.batch_id, r.cached "
            "FROM results r JOIN requests q ON q.cell_id = r.cell_id "
            "LEFT JOIN responses a ON a.id = r.response_id "
            "WHERE r.run_id = ? ORDER BY r.idx"
        )
    first = "c.choice IS NULL OR c.choice = 0"
    per_choice = ", ".join(
        f"CASE WHEN c.choice IS NULL THEN a.{stored} ELSE c.{stored} END AS {name}"
        for stored, name in CHOICE_COLUMNS
    )
    once = ", ".join(
        f"CASE WHEN {first} THEN {column} END AS {column.split('.')[1]}"
        for column in ("a.prompt_tokens", "a.completion_tokens", "a.cached_tokens",
                       "a.reasoning_tokens", "r.cost_usd")
    )  # fmt: skip
    return (
        "SELECT r.run_id, r.idx, r.cell_id, r.prompt, r.vars_json, r.params_json, r.repeat, "
        "COALESCE(c.choice, 0) AS choice, "
        # json_extract gives the messages' JSON text exactly as it was written (compact).
        "json_extract(q.request_json, '$.messages') AS messages, "
        f"{per_choice}, a.reasoning_summary, r.status, r.error_type, r.http_status, r.error, "
        f"r.attempts, {once}, r.latency_s, a.ttft_s, a.tokens_per_s, a.resolved_model, "
        "a.request_id, r.batch_id, r.cached "
        "FROM results r JOIN requests q ON q.cell_id = r.cell_id "
        "LEFT JOIN responses a ON a.id = r.response_id "
        "LEFT JOIN choices c ON c.response_id = a.id "
        "WHERE r.run_id = ? ORDER BY r.idx, c.choice"
    )


RESULTS_SQL = results_sql()
ONE_CHOICE_SQL = results_sql(several=False)
#: Whether any answer of a run has several choices (then the result query joins them).
SEVERAL_SQL = (
    "SELECT 1 FROM results r JOIN choices c ON c.response_id = r.response_id "
    "WHERE r.run_id = ? LIMIT 1"
)


def statements(script: str) -> Iterator[str]:
    """The statements of a migration's SQL, in order, each with its ``;``.

    A ``;`` ends a statement only where :func:`sqlite3.complete_statement` says the statement
    is complete, so one inside a string literal, a quoted name, a comment or a trigger's
    ``BEGIN ... END`` body does not. The caller executes them one by one inside its own
    transaction (``executescript`` would commit first, and a migration must stay atomic)."""
    start = 0
    end = script.find(";")
    while end != -1:
        if sqlite3.complete_statement(script[start : end + 1]):
            if script[start:end].strip():
                yield script[start : end + 1]
            start = end + 1
        end = script.find(";", end + 1)
    if script[start:].strip():
        yield script[start:]  # the last statement needs no ``;``
