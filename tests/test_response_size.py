"""Bounded memory: no answer is read past ``limits.max_response_bytes``, counted decompressed.

The real openai SDK (aiohttp transport) over loopback against the fault server's answers too
large to hold — a huge body, a gzip bomb (a few KB on the wire, MBs inflated), a stream that
never ends — with a 64 KB limit, so each test reads little.
"""

from __future__ import annotations

import gzip
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

import promptgrid
from promptgrid.api import Experiment
from promptgrid.config import RunOptions, resolve
from promptgrid.errors import ResponseTooLarge, SpecError
from promptgrid.providers.base import Request
from promptgrid.providers.batch import BatchClient
from promptgrid.providers.openai import OpenAIProvider
from promptgrid.spec.schema import DEFAULT_MAX_RESPONSE_BYTES
from promptgrid.testing import FaultServer

KEY = "sk-test-size-0123456789"
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer(huge_bytes=4 * 1024 * 1024) as s:  # 64 times the limit
        yield s


def request(api: str = "chat", stream: bool = False) -> Request:
    params: dict[str, object] = {"max_tokens": 20}
    if stream:
        params["stream"] = True
    return Request("e", "gpt-4o-mini", ({"role": "user", "content": "Name a dog."},), params, api)


async def answer(server: FaultServer, fault: str, req: Request, limit: int = LIMIT) -> object:
    """What the provider makes of one answer of kind ``fault``: a completion or an error."""
    server.script([fault])
    provider = OpenAIProvider(
        base_url=server.base_url, api_key=KEY, timeout_s=30, max_response_bytes=limit
    )
    try:
        return await provider.complete(req)
    except ResponseTooLarge as error:
        return error
    finally:
        await provider.aclose()


@pytest.mark.slow
@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fault", ["huge", "gzip_bomb", "endless"])
async def test_an_answer_past_the_limit_is_cut_off_as_it_is_read(
    server: FaultServer, fault: str, stream: bool, api: str
) -> None:
    got = await answer(server, fault, request(api, stream))
    assert isinstance(got, ResponseTooLarge), got
    assert got.code == "response_too_large" and not got.retryable
    assert got.http_status is None  # a 200: the server may have charged it
    assert "65,536 bytes" in got.message and "max_response_bytes" in got.message


@pytest.mark.slow
def test_the_gzip_bomb_is_small_on_the_wire(server: FaultServer) -> None:
    # What the limit must count: the bomb's bytes on the wire are far under it.
    server.script(["gzip_bomb"])
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    sent = urllib.request.Request(
        f"{server.base_url}/chat/completions", data=body.encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(sent, timeout=30) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        wire = response.read()
    assert len(wire) < LIMIT // 4
    assert len(gzip.decompress(wire)) > 4 * 1024 * 1024


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_compressed_answer_within_the_limit_is_read_whole(
    server: FaultServer, stream: bool
) -> None:
    server.configure(huge_bytes=LIMIT // 2)
    try:
        got = await answer(server, "gzip_bomb", request(stream=stream))
    finally:
        server.configure(huge_bytes=4 * 1024 * 1024)
    assert not isinstance(got, ResponseTooLarge), got
    assert got.text == "x" * (LIMIT // 2)  # type: ignore[attr-defined]


async def test_canned_clients_are_bounded_too() -> None:
    big = json.dumps({"error": {"message": "x" * (2 * LIMIT), "type": "server_error"}}).encode()
    transport = httpx2.MockTransport(
        lambda _: httpx2.Response(500, stream=httpx2.ByteStream(big))  # read as it comes
    )
    provider = OpenAIProvider(
        base_url="http://llm.test/v1", api_key=KEY, max_response_bytes=LIMIT,
        http_client=httpx2.AsyncClient(transport=transport),
    )  # fmt: skip
    with pytest.raises(ResponseTooLarge) as caught:
        await provider.complete(request())
    await provider.aclose()
    assert caught.value.http_status == 500  # an error status: nothing was charged


async def test_the_batch_client_is_bounded_but_for_file_contents(tmp_path: Path) -> None:
    big = b"x" * (2 * LIMIT)

    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/content"):  # a batch's output file: streamed to disk
            return httpx2.Response(200, stream=httpx2.ByteStream(big))
        batch = {
            "id": "batch_1",
            "object": "batch",
            "status": "completed",
            "padding": "x" * len(big),
        }
        return httpx2.Response(200, stream=httpx2.ByteStream(json.dumps(batch).encode()))

    client = BatchClient(
        base_url="http://llm.test/v1", api_key=KEY, max_response_bytes=LIMIT,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(answer)),
    )  # fmt: skip
    try:
        with pytest.raises(ResponseTooLarge):
            await client.retrieve("batch_1")
        await client.download("file_1", tmp_path / "out.jsonl")
    finally:
        await client.aclose()
    assert (tmp_path / "out.jsonl").read_bytes() == big


def test_the_limit_defaults_to_32_mib_and_is_set_per_provider(write_yaml) -> None:  # type: ignore[no-untyped-def]
    path = write_yaml(
        """\
        provider: openai
        providers:
          local: {base_url: "http://127.0.0.1:9/v1", models: [small],
                  limits: {max_response_bytes: 1000000}}
          other: {base_url: "http://127.0.0.1:9/v1", models: [other]}
        prompts: {p: hi}
        params: {model: [gpt-4o-mini, small, other]}
        limits: {max_response_bytes: 2000000}
        """
    )
    config = resolve(Experiment.from_yaml(path), RunOptions())
    sizes = {name: e.limits.max_response_bytes for name, e in config.endpoints.items()}
    assert sizes == {"openai": 2_000_000, "local": 1_000_000, "other": 2_000_000}
    plain = write_yaml("provider: openai\nprompts: {p: hi}\nparams: {model: m}\n", "plain.yaml")
    (endpoint,) = resolve(Experiment.from_yaml(plain), RunOptions()).endpoints.values()
    assert endpoint.limits.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 32 * 1024 * 1024


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "'big'", "100"])
def test_the_limit_must_be_a_whole_number_of_bytes(write_yaml, value: str) -> None:  # type: ignore[no-untyped-def]
    path = write_yaml(
        f"provider: openai\nprompts: {{p: hi}}\nparams: {{model: m}}\n"
        f"limits: {{max_response_bytes: {value}}}\n"
    )
    with pytest.raises(SpecError) as caught:
        Experiment.from_yaml(path)
    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == ("limits.max_response_bytes", 4)


@pytest.mark.slow
def test_a_run_records_a_too_large_answer_as_an_error_row_and_goes_on(
    write_yaml, tmp_path: Path, server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = write_yaml(
        f"""\
        provider: openai
        providers:
          openai: {{base_url: "{server.base_url}", limits: {{max_response_bytes: {LIMIT}}}}}
        prompts: {{p: "Name a {{{{ animal }}}}"}}
        vars: {{animal: [dog, cat, horse]}}
        params: {{model: gpt-4o-mini, max_tokens: 20}}
        """
    )
    server.reset()
    server.script_for("cat", ["gzip_bomb"])
    df = promptgrid.run(path, results_dir=tmp_path, progress=False).set_index("animal")
    assert df.loc["cat", "error_type"] == "response_too_large"
    assert df.loc["cat", "attempts"] == 1  # not retried: the same answer would come again
    assert (df.drop(index="cat")["status"] == "ok").all()
    assert server.stats()["requests"] == 3
