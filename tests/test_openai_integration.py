"""promptgrid end to end on the openai provider: the real SDK over loopback to the fault server.

Every test drives the public surface (``promptgrid.run`` / ``arun``, or ``promptgrid run`` as a
subprocess) against :class:`promptgrid.testing.FaultServer` on 127.0.0.1: the fault matrix of
issue 4 (5xx, 429 + ``retry-after``, timeouts, dropped connections, malformed and truncated
bodies, 4xx, bad key, exhausted quota), endpoint pauses, limits learned from headers, several
endpoints in one experiment, and that every answer belongs to its own request (the server answers
``"echo: <last user message>"``).

Nothing sleeps to let time pass: waits are the retry waits the code under test makes, kept tiny
(``retry_after_s`` and ``retry.max_wait_s`` of a few tens of milliseconds; the exponential
backoff shortened through ``promptgrid.engine.attempts.BACKOFF_MULTIPLIER_S`` where a test
measures a retry-after). A test whose retry-afters are long enough to see runs on a
:class:`SkipClock`: the engine's waits jump its clock instead of passing.
Timelines are read from the server side (:class:`RecordingServer`), on the client's clock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiohttp import web

import promptgrid
import promptgrid.engine.attempts
import promptgrid.engine.limiter
from promptgrid.store import Store
from promptgrid.testing import FaultServer

pytestmark = pytest.mark.slow  # every test here starts a FaultServer (or the CLI)

#: A key distinctive enough to grep for in every output and file.
KEY = "sk-test-7f3a9c41d2e8-LEAKCHECK"
PROMPTGRID = Path(sys.executable).with_name("promptgrid")


# --------------------------------------------------------------------------- helpers


class RecordingServer(FaultServer):
    """A FaultServer that also logs each request: (arrival time, last user message, model, status).

    It wraps the request handler of the server's core (a private attribute, read before
    ``start()`` builds the app); times are ``clock()``: ``time.monotonic()``, the clock of
    asyncio's loops, or a :class:`SkipClock`'s.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log: list[tuple[float, str, str, int]] = []
        handler = self._core.completions

        async def completions(request: web.Request) -> web.StreamResponse:
            arrived = clock()
            body = json.loads(await request.read())  # aiohttp caches it for the real handler
            users = [m["content"] for m in body["messages"] if m["role"] == "user"]
            response = await handler(request)
            # A dropped connection returns a 500 that is never sent: log it as 0.
            status = 0 if _aborted(request) else response.status
            self.log.append((arrived, users[-1], body["model"], status))
            return response

        self._core.completions = completions  # type: ignore[method-assign]

    def arrivals(self, text: str) -> list[tuple[float, int]]:
        """(time, status) of every request whose last user message is ``text``, in order."""
        return sorted((t, status) for t, last, _, status in self.log if last == text)


class SkipClock:
    """Virtual time for an async test: the running loop's clock is real time plus an offset,
    and the engine's waits (``promptgrid.engine.limiter.SLEEP``: retry waits, an endpoint's
    pause) move the clock to their end at once, so a retry-after costs no real time; any
    timeline read on this clock still shows it. The jump is immediate (not when all else is
    idle): not for a test about what goes on elsewhere *during* a wait."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.offset += max(seconds, 0.0)
        await asyncio.sleep(0)


@pytest.fixture
async def clock(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SkipClock]:
    skip = SkipClock()
    monkeypatch.setattr(asyncio.get_running_loop(), "time", skip.now)
    monkeypatch.setattr(promptgrid.engine.limiter, "SLEEP", skip.sleep)
    yield skip


def _aborted(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def write_experiment(
    folder: Path,
    n: int = 10,
    *,
    limits: str = "{max_concurrency: 4}",
    retry: str = "{max_attempts: 4, max_wait_s: 0.05}",
    head: str = "provider: openai",
    params: str = "{model: gpt-4o-mini, max_tokens: 20}",
    name: str = "faults",
) -> Path:
    """An experiment of ``n`` cells whose user messages are ``"Say w0"`` ... ``"Say w<n-1>"``."""
    path = folder / f"{name}.yaml"
    words = ", ".join(f"w{i}" for i in range(n))
    lines = [
        f"name: {name}",
        head,
        "prompts:",
        "  p:",
        "    - {role: system, content: Answer briefly.}",
        '    - {role: user, content: "Say {{ w }}"}',
        f"vars: {{w: [{words}]}}",
        f"params: {params}",
        f"limits: {limits}",
        f"retry: {retry}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(path: Path, server: FaultServer, results: Path, **options: Any) -> pd.DataFrame:
    """``promptgrid.run`` against ``server`` with the store in ``results``."""
    return promptgrid.run(
        path, base_url=server.base_url, results_dir=results, progress=False, **options
    )


def assert_own_answers(df: pd.DataFrame) -> None:
    """Each ok row's response echoes the last user message of its own rendered request."""
    ok = df[df["status"] == "ok"]
    assert len(ok), "no ok rows to check"
    for messages, response in zip(ok["messages"], ok["response"], strict=True):
        last_user = [m["content"] for m in json.loads(messages) if m["role"] == "user"][-1]
        assert response == f"echo: {last_user}"


def row(df: pd.DataFrame, word: str) -> pd.Series:
    (index,) = df.index[df["w"] == word]
    return df.loc[index]


def store_status(results: Path, run_id: str) -> str:
    with Store.in_dir(results) as store:
        info = store.run(run_id)
        assert info is not None
        return info.status


def only_run(results: Path) -> tuple[str, str, int]:
    """(run id, status, total cells) of the single run in ``results``."""
    with Store.in_dir(results) as store:
        (info,) = store.runs()
        return info.run_id, info.status, info.total


def assert_key_absent(*texts: str, folder: Path) -> None:
    """The API key appears in no text and in no byte of any file under ``folder``."""
    for text in texts:
        assert KEY not in text
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "promptgrid.sqlite" for p in files)
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    environ.update({"OPENAI_API_KEY": KEY, **(env or {})})
    return subprocess.run(
        [str(PROMPTGRID), *args], env=environ, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer(retry_after_s=0.05, stall_s=5.0) as s:
        yield s


# --------------------------------------------------------------------------- retried faults


async def test_503_then_429_then_200_ends_ok_after_three_attempts(
    tmp_path: Path, results: Path, monkeypatch: pytest.MonkeyPatch, clock: SkipClock
) -> None:
    # Backoff (for the 503) near zero, retry-after (for the 429) 0.5 s: the gaps tell them apart.
    monkeypatch.setattr(promptgrid.engine.attempts, "BACKOFF_MULTIPLIER_S", 0.001)
    waits: list[float] = []  # what tenacity was told to wait before each retry
    decide = promptgrid.engine.attempts.wait_retry_after.__call__

    def recorded(self: Any, retry_state: Any) -> float:
        waits.append(decide(self, retry_state))
        return waits[-1]

    monkeypatch.setattr(promptgrid.engine.attempts.wait_retry_after, "__call__", recorded)
    with RecordingServer(clock.now, retry_after_s=0.5) as server:
        server.script_for("Say w3", ["503", "429", "200"])
        path = write_experiment(tmp_path, retry="{max_attempts: 4, max_wait_s: 1}")
        df = await promptgrid.arun(
            path, base_url=server.base_url, results_dir=results, progress=False
        )

    assert (df["status"] == "ok").all() and len(df) == 10
    w3 = row(df, "w3")
    assert w3["attempts"] == 3 and w3["response"] == "echo: Say w3"
    assert set(df.loc[df["w"] != "w3", "attempts"]) == {1}
    assert_own_answers(df)
    (_, s503), (t429, s429), (t200, s200) = server.arrivals("Say w3")
    assert (s503, s429, s200) == (503, 429, 200)
    assert t200 - t429 >= 0.5  # the server's retry-after-ms, honoured
    # Values, not durations: the 503 was retried after a backoff (0.001 s windows), not after
    # another answer's retry-after; the 429 after its own 0.5 s.
    assert len(waits) == 2 and waits[0] <= 0.002 and waits[1] == 0.5, waits
    with Store.in_dir(results) as store:
        history = [
            (a["error_type"], a["http_status"])
            for a in store.attempt_history(df["run_id"][0])
            if a["idx"] == w3.name
        ]
    assert history == [("server_error", 503), ("rate_limited", 429), (None, None)]


def test_5xx_beyond_max_attempts_is_an_error_row(
    server: RecordingServer, tmp_path: Path, results: Path
) -> None:
    server.script_for("Say w1", ["503"] * 3)
    server.script_for("Say w2", ["500", "502", "503", "200"])  # one 5xx too many
    df = run(
        write_experiment(tmp_path, retry="{max_attempts: 3, max_wait_s: 0.05}"), server, results
    )

    for word, status in (("w1", 503), ("w2", 503)):
        r = row(df, word)
        assert r["status"] == "error" and r["error_type"] == "server_error"
        assert r["http_status"] == status and r["attempts"] == 3
        assert pd.isna(r["response"]) and "HTTP 503" in r["error"]
    assert len(server.arrivals("Say w1")) == 3  # never more than max_attempts
    assert (df.loc[~df["w"].isin(["w1", "w2"]), "status"] == "ok").all()
    assert_own_answers(df)
    assert store_status(results, df["run_id"][0]) == "finished"


def test_cli_error_rows_exit_3_with_a_summary_by_error_type(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, retry="{max_attempts: 2, max_wait_s: 0.05}")
    results = tmp_path / "results"
    with FaultServer(retry_after_s=0.05) as server:
        server.script_for("Say w1", ["503", "503"])
        server.script_for("Say w2", ["500", "500"])
        server.script_for("Say w3", ["404"])
        proc = cli("run", str(path), "--base-url", server.base_url,
                   "--results-dir", str(results), "--no-progress")  # fmt: skip

    assert proc.returncode == 3, proc.stderr
    assert "7 ok, 3 errors" in proc.stdout  # two server_error rows and one bad_request
    summary = {line.split(" x ")[1].strip(): int(line.split(" x ")[0]) for line in
               proc.stderr.splitlines() if " x " in line}  # fmt: skip
    assert summary == {"server_error": 2, "bad_request": 1}
    assert "Traceback" not in proc.stderr
    assert_key_absent(proc.stdout, proc.stderr, folder=results)


def test_timeouts_are_retried_then_reported(
    server: RecordingServer, tmp_path: Path, results: Path
) -> None:
    server.script_for("Say w1", ["stall", "ok"])  # transient
    server.script_for("Say w2", ["stall"] * 3)  # persistent
    path = write_experiment(
        tmp_path, limits="{max_concurrency: 4, timeout_s: 0.3}",
        retry="{max_attempts: 3, max_wait_s: 0.05}",
    )  # fmt: skip
    df = run(path, server, results)

    w1, w2 = row(df, "w1"), row(df, "w2")
    assert w1["status"] == "ok" and w1["attempts"] == 2 and w1["response"] == "echo: Say w1"
    assert w2["status"] == "error" and w2["error_type"] == "timeout" and w2["attempts"] == 3
    assert pd.isna(w2["http_status"])
    assert (df.loc[~df["w"].isin(["w1", "w2"]), "attempts"] == 1).all()
    assert_own_answers(df)
    # Each stalled attempt was given up after timeout_s: the server saw its client leave during
    # the stall (an answer sent after a full stall would count as "200").
    stats = server.stats()
    assert stats["injected"]["stall"] == 4 and stats["by_outcome"]["stall"] == 4


async def test_dropped_malformed_and_truncated_answers_are_retried(
    server: RecordingServer, tmp_path: Path, results: Path
) -> None:
    server.script_for("Say w1", ["drop"])
    server.script_for("Say w2", ["malformed"])
    server.script_for("Say w3", ["truncated"])
    server.script_for("Say w4", ["drop", "malformed", "truncated"])
    path = write_experiment(tmp_path, retry="{max_attempts: 4, max_wait_s: 0.05}")

    df = await promptgrid.arun(path, base_url=server.base_url, results_dir=results, progress=False)

    assert (df["status"] == "ok").all()
    attempts = dict(zip(df["w"], df["attempts"], strict=True))
    assert [attempts[w] for w in ("w0", "w1", "w2", "w3", "w4")] == [1, 2, 2, 2, 4]
    assert (df["finish_reason"] == "stop").all()  # the truncated answer was not kept
    assert_own_answers(df)
    with Store.in_dir(results) as store:
        errors = Counter(
            a["error_type"] for a in store.attempt_history(df["run_id"][0]) if a["error_type"]
        )
    # A dropped connection is a connection error, though the SDK's aiohttp transport reports
    # it as a ConnectTimeout (APITimeoutError).
    assert errors == {"connection_error": 2, "malformed_response": 4}


def test_undecodable_and_garbage_answers_never_kill_the_run(
    server: RecordingServer, tmp_path: Path, results: Path
) -> None:
    # Once each: retried. Persistently: an error row, and the rest of the run goes on.
    server.script_for("Say w1", ["bad_utf8"])
    server.script_for("Say w2", ["garbage"])
    server.script_for("Say w3", ["empty"])
    server.script_for("Say w4", ["bad_utf8"] * 3)
    path = write_experiment(tmp_path, retry="{max_attempts: 3, max_wait_s: 0.05}")

    df = run(path, server, results)

    statuses = dict(zip(df["w"], df["status"], strict=True))
    assert statuses.pop("w4") == "error" and set(statuses.values()) == {"ok"}
    w4 = row(df, "w4")
    assert w4["error_type"] == "malformed_response" and w4["attempts"] == 3
    assert_own_answers(df)
    run_id, status, _ = only_run(results)
    assert status == "finished"
    # A retry makes progress: the server answers properly now.
    again = promptgrid.retry(run_id, results_dir=results, progress=False)
    assert (again["status"] == "ok").all()


@pytest.mark.parametrize("value", ["-5", "nan", "0", "Wed, 21 Oct 2015 07:28:00 GMT"])
async def test_an_unusable_retry_after_falls_back_to_backoff(
    tmp_path: Path, results: Path, value: str, clock: SkipClock
) -> None:
    # Every answer is a 429 saying "retry after -5 s" (or nan, 0, a past date). Taken at its
    # word, that is every attempt at once; instead the endpoint pauses (capped by max_wait_s)
    # between attempts, so attempts of one cell are at least that far apart.
    with RecordingServer(clock.now, bad_retry_after=value) as server:
        server.script(["retry_after_bad"] * 100)
        path = write_experiment(tmp_path, n=5, retry="{max_attempts: 3, max_wait_s: 0.3}")
        df = await promptgrid.arun(
            path, base_url=server.base_url, results_dir=results, progress=False
        )
        arrivals = [server.arrivals(f"Say w{i}") for i in range(5)]
    assert (df["error_type"] == "rate_limited").all() and (df["attempts"] == 3).all()
    for times in arrivals:
        gaps = [b - a for (a, _), (b, _) in itertools.pairwise(times)]
        assert len(gaps) == 2 and min(gaps) >= 0.25, gaps  # a lower bound: load cannot break it


def test_a_key_echoed_by_the_server_is_never_written(tmp_path: Path, results: Path) -> None:
    with RecordingServer(echo_key=True) as server:
        server.script_for("Say w2", ["503", "503", "503", "503"])
        path = write_experiment(tmp_path, retry="{max_attempts: 4, max_wait_s: 0.05}")
        df = run(path, server, results, formats="parquet,csv,xlsx,jsonl")
        out = cli("show", "--results-dir", str(results), "--columns", "response,request_id,error")
    assert "***" in "".join(df["response"].dropna()) and (df["status"] == "error").sum() == 1
    assert_key_absent(out.stdout, out.stderr, df.to_csv(), folder=results)


@pytest.mark.parametrize("status", ["400", "404", "422"])
def test_client_errors_are_not_retried(
    status: str, server: RecordingServer, tmp_path: Path, results: Path
) -> None:
    server.script_for("Say w2", [status, "200"])  # a retry would succeed: there must be none
    df = run(write_experiment(tmp_path, n=4), server, results)

    w2 = row(df, "w2")
    assert w2["status"] == "error" and w2["error_type"] == "bad_request"
    assert w2["http_status"] == int(status) and w2["attempts"] == 1
    assert [s for _, s in server.arrivals("Say w2")] == [int(status)]
    assert (df.loc[df["w"] != "w2", "status"] == "ok").all()
    assert_own_answers(df)


# --------------------------------------------------------------------------- run stoppers


def test_bad_key_stops_the_run_at_once_leaving_cells_pending(tmp_path: Path, results: Path) -> None:
    path = write_experiment(tmp_path, n=200, limits="{max_concurrency: 50}")
    with FaultServer(api_keys={"sk-other"}) as server:
        with pytest.raises(promptgrid.AuthenticationFailed) as info:
            run(path, server, results, formats="parquet,csv,xlsx,jsonl")
        requests = server.stats()["requests"]

    run_id, status, total = only_run(results)
    message = str(info.value)
    assert "HTTP 401" in message and run_id in message and "resume=True" in message
    assert "200 cells pending" in message and "Traceback" not in message
    assert status == "stopped" and total == 200
    assert len(promptgrid.load(run_id, results_dir=results)) == 0  # no error rows
    # No limit declared: the first request is a probe, the 49 other workers wait for it, and
    # the 401 stops them before they send.
    assert requests == 1
    assert_key_absent(message, folder=results)
    assert (results / "faults" / run_id / "results.xlsx").exists()


def test_cli_bad_key_exits_1_with_one_message_and_no_key(tmp_path: Path) -> None:
    path = write_experiment(tmp_path)
    results = tmp_path / "results"
    with FaultServer(api_keys={"sk-other"}) as server:
        proc = cli("run", str(path), "--base-url", server.base_url, "--results-dir", str(results),
                   "--no-progress", "--format", "parquet,csv,xlsx,jsonl")  # fmt: skip

    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    stopped = [line for line in proc.stderr.splitlines() if line.startswith("stopped:")]
    assert len(stopped) == 1 and "401" in stopped[0]
    assert "--resume" in proc.stderr
    assert "0 ok, 0 errors" in proc.stdout
    run_id, status, _ = only_run(results)
    assert status == "stopped" and run_id in proc.stderr
    assert_key_absent(proc.stdout, proc.stderr, folder=results)


def test_insufficient_quota_stops_the_run_and_resume_finishes_it(
    server: RecordingServer, tmp_path: Path, results: Path
) -> None:
    server.script_for("Say w5", ["quota"])
    path = write_experiment(tmp_path, n=20, limits="{max_concurrency: 2}")

    with pytest.raises(promptgrid.QuotaExceeded, match="quota") as info:
        run(path, server, results)
    run_id, status, _ = only_run(results)
    first = promptgrid.load(run_id, results_dir=results)

    assert run_id in str(info.value)
    assert not (first["status"] == "error").any()
    assert "w5" not in set(first["w"])  # pending, not an error row
    assert 0 < len(first) < 20
    assert status == "stopped"
    assert server.stats()["by_outcome"]["quota"] == 1
    assert_key_absent(folder=results)

    server.reset_stats()
    done = run(path, server, results, resume=True)

    assert len(done) == 20 and (done["status"] == "ok").all()
    assert set(done["run_id"]) == {run_id} and store_status(results, run_id) == "finished"
    assert_own_answers(done)
    # Only the pending cells were sent again; the saved ones were not paid for twice.
    assert server.stats()["requests"] == 20 - len(first)


# --------------------------------------------------------------------------- admission


async def test_a_429_pauses_the_endpoint_for_its_retry_after(
    tmp_path: Path, results: Path, clock: SkipClock
) -> None:
    pause = 1.5
    with RecordingServer(clock.now, retry_after_s=pause) as server:
        server.script_for("Say w8", ["429"])
        path = write_experiment(tmp_path, n=40, limits="{max_concurrency: 8}",
                                retry="{max_attempts: 3, max_wait_s: 2}")  # fmt: skip
        df = await promptgrid.arun(
            path, base_url=server.base_url, results_dir=results, progress=False
        )
        log = sorted(server.log)

    assert (df["status"] == "ok").all() and row(df, "w8")["attempts"] == 2
    assert_own_answers(df)
    (t429,) = [t for t, _, _, status in log if status == 429]
    # A count, not a time: during the pause only requests already admitted when the 429 came
    # back may still arrive (however late load makes them), fewer than max_concurrency; the
    # rest of the grid waits for the pause to end.
    during = [t for t, *_ in log if t429 < t < t429 + pause]
    assert len(log) == 41 and len(during) < 8
    assert server.arrivals("Say w8")[1][0] >= t429 + pause  # the retry waited too


def test_learned_limits_keep_429s_rare(tmp_path: Path, results: Path) -> None:
    # No rpm declared; the server allows 300 per minute, bucket full: 300 at once, then 5/s.
    rpm, calls = 300, 315
    path = write_experiment(tmp_path, n=calls, limits="{max_concurrency: 50}",
                            retry="{max_attempts: 10, max_wait_s: 2}")  # fmt: skip
    with FaultServer(rpm=rpm) as server:
        df = run(path, server, results)
        stats = server.stats()

    assert (df["status"] == "ok").all() and len(df) == calls
    assert_own_answers(df)
    assert sum(stats["rate_limited"].values()) <= 0.05 * calls + 1
    assert stats["requests"] <= calls * 1.05 + 1  # paced by the learned bucket, not flooded


# --------------------------------------------------------------------------- several endpoints


def two_endpoint_experiment(
    folder: Path, a: FaultServer, b: FaultServer, n: int, conc: int, a_limits: str = "{}"
) -> Path:
    head = (
        "provider: a\nproviders:\n"
        f'  a: {{base_url: "{a.base_url}", api_key_env: PG_KEY_A, models: [model-a],'
        f" limits: {a_limits}}}\n"
        f'  b: {{base_url: "{b.base_url}", api_key_env: PG_KEY_B, models: [model-b]}}'
    )
    return write_experiment(
        folder, n=n, head=head,
        params="{model: [model-a, model-b], max_tokens: 20}",
        limits=f"{{max_concurrency: {conc}}}", retry="{max_attempts: 3, max_wait_s: 2}",
    )  # fmt: skip


@pytest.fixture
def two_servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RecordingServer, ...]]:
    """Two endpoints in real time: their tests are about what b does while a waits, so a's
    waits must take time (a :class:`SkipClock` would end them at once)."""
    monkeypatch.setenv("PG_KEY_A", "sk-a-key")
    monkeypatch.setenv("PG_KEY_B", "sk-b-key")
    with (
        RecordingServer(api_keys={"sk-a-key"}, retry_after_s=0.5) as a,
        RecordingServer(api_keys={"sk-b-key"}, retry_after_s=0.5) as b,
    ):
        yield a, b


def test_two_endpoints_route_by_model_with_their_own_keys_and_limits(
    two_servers: tuple[RecordingServer, RecordingServer], tmp_path: Path, results: Path
) -> None:
    a, b = two_servers
    a.script_for("Say w3", ["429"])  # pauses endpoint a for 0.5 s; b must not notice
    path = two_endpoint_experiment(tmp_path, a, b, n=10, conc=20)  # a worker per cell

    df = promptgrid.run(path, results_dir=results, progress=False)

    assert len(df) == 20 and (df["status"] == "ok").all()
    assert_own_answers(df)
    for server, model, key in ((a, "model-a", "sk-a-key"), (b, "model-b", "sk-b-key")):
        assert {m for _, _, m, _ in server.log} == {model}
        assert server.stats()["by_key"] == {key: len(server.log)}
    assert len(b.log) == 10 and len(a.log) == 11  # a's 429 was retried on a only
    assert set(df.loc[df["model"] == "model-b", "attempts"]) == {1}
    # Order, not wall-clock bounds: w3's retry honours the 0.5 s retry-after (a lower bound,
    # which load can only lengthen), and every b call arrives before it (b ran on while a was
    # paused). Calls already on the wire when the 429 came may arrive after it under load.
    (t429, retried) = [t for t, last, _, _ in a.log if last == "Say w3"]
    assert retried >= t429 + 0.5
    assert max(t for t, *_ in b.log) < retried


@pytest.mark.parametrize("trouble", ["paused", "slow"])
def test_a_paused_or_slow_endpoint_does_not_hold_up_another(
    trouble: str,
    two_servers: tuple[RecordingServer, RecordingServer],
    tmp_path: Path,
    results: Path,
) -> None:
    """Fewer workers than cells: a's cells must not take the workers b's cells need."""
    a, b = two_servers
    a_limits = "{}"
    if trouble == "paused":
        a.configure(retry_after_s=2.0)
        a.script_for("Say w3", ["429"])  # a 2 s pause of endpoint a
    else:  # a local model: 2 at a time, 0.2 s each, so a's 20 cells take 2 s
        a.configure(latency_s=0.2)
        a_limits = "{max_concurrency: 2}"
    path = two_endpoint_experiment(tmp_path, a, b, n=20, conc=8, a_limits=a_limits)

    df = promptgrid.run(path, results_dir=results, progress=False)

    assert len(df) == 40 and (df["status"] == "ok").all()
    assert_own_answers(df)
    # b's 20 instant calls all arrive while a is still held up: an order, not a duration.
    last_b = max(t for t, *_ in b.log)
    a_times = sorted(t for t, *_ in a.log)
    if trouble == "paused":
        (paused_at, first), (resumed_at, again) = a.arrivals("Say w3")
        assert (first, again) == (429, 200)
        assert resumed_at - paused_at >= 2.0  # a was held up for its retry-after
        assert last_b < resumed_at
    else:
        assert a_times[-1] - a_times[0] >= 1.8  # ten rounds of two 0.2 s calls
        assert last_b < a_times[10]  # before a had sent even half its cells (>= 1 s in)


# --------------------------------------------------------------------------- answers


def test_each_answer_belongs_to_its_own_request(tmp_path: Path, results: Path) -> None:
    """Many concurrent calls over shared keep-alive connections, with faults and a
    multi-turn prompt: each row still carries the answer to its own last user message."""
    path = tmp_path / "multi.yaml"
    path.write_text(
        textwrap.dedent("""\
        name: multi
        provider: openai
        prompts:
          chat:
            - {role: system, content: "Repeat the last message."}
            - {role: user, content: "first {{ a }}"}
            - {role: assistant, content: "ok {{ a }}"}
            - {role: user, content: "second {{ a }}-{{ b }}"}
          short: "only {{ b }}/{{ a }}"
        vars:
          a: [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9]
          b: [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9]
        params: {model: gpt-4o-mini, temperature: [0, 1], max_tokens: 20}
        limits: {max_concurrency: 64}
        retry: {max_attempts: 20, max_wait_s: 0.02}  # 0.25 ** 20: no cell runs out
        """)
    )
    faults = {"500": 0.1, "drop": 0.05, "malformed": 0.05, "truncated": 0.05}
    with FaultServer(latency_s=0.002, fault_rates=faults, seed=4) as server:
        df = run(path, server, results)
        answered = server.stats()["answered"]

    assert len(df) == 400 and (df["status"] == "ok").all()
    assert_own_answers(df)
    assert len(set(df["response"])) == 200  # two temperatures ask the same question
    assert sum(answered.values()) == 400 and set(answered.values()) == {2}


# --------------------------------------------------------------------------- what a file can do


def test_credentials_in_a_base_url_reach_no_file_and_no_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptgrid.cli import main

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEY)
    secrets = ("hunter22pw", "topsecret123")
    results = tmp_path / "r"
    with FaultServer() as server:
        for url in (server.base_url.replace("http://", "http://user:hunter22pw@"),
                    server.base_url + "?api-key=topsecret123"):  # fmt: skip
            path = tmp_path / "leaky.yaml"
            path.write_text(
                "provider: aws\n"
                f"providers: {{aws: {{base_url: '{url}', api_key_env: AWS_SECRET_ACCESS_KEY}}}}\n"
                "prompts: {p: hi}\nparams: {model: gpt-4o-mini, max_tokens: 5}\n"
                "retry: {max_attempts: 1}\n"
            )
            with pytest.raises(SystemExit):
                main(["run", str(path), "--results-dir", str(results),
                      "--format", "parquet,csv,xlsx,jsonl,html"])  # fmt: skip
            out = capsys.readouterr()
            public = url.replace("hunter22pw", "***").replace("topsecret123", "***")
            public = public.replace("user:***", "***")
            # The start of the run names the host and the variable the key comes from.
            assert f"calls go to: aws {public} (key from $AWS_SECRET_ACCESS_KEY)" in out.err
            for secret in (*secrets, KEY):
                assert secret not in out.out + out.err
    main(["report", "--results-dir", str(results)])
    files = [p for p in results.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".sqlite", ".csv", ".xlsx", ".jsonl", ".html"}
    for file in files:
        data = file.read_bytes()
        assert not [s for s in (*secrets, KEY) if s.encode() in data], file


def test_a_retry_takes_the_url_credentials_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptgrid.errors import UsageError
    from promptgrid.operations import stored_experiment

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEY)
    url = "http://user:hunter22pw@127.0.0.1:9/v1"  # nothing listens: every call fails at once
    path = tmp_path / "leaky.yaml"
    path.write_text(
        "provider: aws\n"
        f"providers: {{aws: {{base_url: '{url}', api_key_env: AWS_SECRET_ACCESS_KEY}}}}\n"
        "prompts: {p: hi}\nparams: {model: gpt-4o-mini, max_tokens: 5}\n"
        "retry: {max_attempts: 1}\n"
    )
    results = tmp_path / "r"
    run_id = promptgrid.run(path, results_dir=results, progress=False).attrs["run_id"]
    experiment, _ = stored_experiment(run_id, results_dir=results)
    assert experiment.file.providers["aws"].base_url == url  # from the file, not the store
    assert promptgrid.retry(run_id, results_dir=results, progress=False)["status"].eq("error").all()
    path.unlink()  # without the file, the credentials are nowhere: the retry says so
    with pytest.raises(UsageError, match="credentials in its URL, which are not recorded"):
        promptgrid.retry(run_id, results_dir=results, progress=False)
